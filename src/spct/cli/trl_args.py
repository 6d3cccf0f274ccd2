"""TRL's own configs on the command line: `--config FILE.yaml` and `--trl FIELD=VALUE` for `spct sft` / `spct rl`.

spct's flags (`--lr`, `--epochs`, ...) cover the usual knobs; every other field of TRL's
`SFTConfig` / `GRPOConfig` (and the transformers `TrainingArguments` under them) is reachable
here, typed and checked by TRL's dataclass through transformers' `HfArgumentParser`, and passed
to the trainer as is. Values given here win over spct's flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..data import InputError


def add_trl_args(p: argparse.ArgumentParser, config_name: str) -> None:
    g = p.add_argument_group(f"TRL {config_name} pass-through")
    g.add_argument("--config", default=None, metavar="YAML",
                   help=f"YAML mapping of TRL {config_name} fields (e.g. `lr_scheduler_type: cosine`), applied over spct's flags")
    g.add_argument("--trl", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"one TRL {config_name} field, e.g. --trl warmup_steps=0.1 (repeatable; wins over --config)")


def trl_overrides(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The TRL fields set by --config and --trl, typed by the config dataclass; unknown fields are an error."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    if args.config:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise InputError(f"--config {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise InputError(f"--config {path}: expected a mapping of {config_cls.__name__} fields")
        out.update(loaded)
    flat: list[str] = []
    for item in args.trl:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--trl {item!r}: expected FIELD=VALUE")
        flat += [f"--{key}", value]
    bad = sorted((set(out) | {x[2:] for x in flat[::2]}) - known)
    if bad:
        raise InputError(f"unknown TRL {config_cls.__name__} field(s): {', '.join(bad)}")
    if flat:
        from transformers import HfArgumentParser

        parsed, _ = HfArgumentParser(config_cls).parse_known_args(["--output_dir", "unused", *flat])
        out.update({key[2:]: getattr(parsed, key[2:]) for key in flat[::2]})
    return out
