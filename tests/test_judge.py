"""GenerativeRewardModel with the scripted fake backend: shuffles, unshuffling, seeds, retries, fitting."""

from __future__ import annotations

import pytest

from spct.backends.fake import FakeBackend, responses_in_prompt
from spct.data import Example, InputError
from spct.judge import GenerativeRewardModel, JudgeConfig, sample_order

# The fake judge scores a response by its length; these four have distinct lengths.
EX = Example("e1", "Which is best?", ["a" * 5, "b" * 45, "c" * 25, "d" * 70], best=[3])


def test_sample_order_is_a_seeded_permutation():
    orders = [sample_order(0, "e1", s, 4) for s in range(8)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1
    assert orders == [sample_order(0, "e1", s, 4) for s in range(8)]
    assert orders != [sample_order(1, "e1", s, 4) for s in range(8)]


def test_scores_are_mapped_back_to_the_original_order():
    backend = FakeBackend()
    [reward] = GenerativeRewardModel(backend, JudgeConfig(k=6)).judge([EX])
    per_response = [1, 5, 3, 8]  # 1 + len // 10
    assert all(judgment.scores == per_response for judgment in reward.judgments)
    # What the model saw at position p is the original response order[p].
    shown = [responses_in_prompt(req.messages[-1]["content"]) for req in backend.calls[0]]
    assert all(s == [EX.responses[i] for i in j.order] for s, j in zip(shown, reward.judgments, strict=True))
    assert len({tuple(j.order) for j in reward.judgments}) > 1  # the order really is shuffled
    assert reward.rewards == [6 * s for s in per_response] and reward.best == 3 and reward.correct is True


def test_greedy_for_k1_and_the_configured_temperature_otherwise():
    backend = FakeBackend()
    grm = GenerativeRewardModel(backend, JudgeConfig(temperature=0.7, max_new_tokens=33))
    grm.judge([EX], k=1)
    grm.judge([EX], k=3)
    assert [r.temperature for r in backend.calls[0]] == [0.0]
    assert [r.temperature for r in backend.calls[1]] == [0.7] * 3
    assert all(r.max_new_tokens == 33 and r.constraint.count == 4 for r in backend.calls[1])
    assert backend.calls[1][0].constraint is not None
    assert GenerativeRewardModel(backend, JudgeConfig(constrain=False))._request(EX, [0, 1, 2, 3], greedy=True, seed=0).constraint is None


def test_same_seed_same_run_and_batching_does_not_change_orders():
    other = Example("e2", "q", ["x", "yy"], best=[1])
    a = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=4, seed=3)).judge([EX, other], batch_size=2)
    b = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=4, seed=3)).judge([EX, other], batch_size=1)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    c = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=4, seed=4)).judge([EX, other])
    assert [j.order for j in a[0].judgments] != [j.order for j in c[0].judgments]


def _flaky(bad_samples: set[int]):
    """A script that fails the given sample indices on the first call only."""
    backend = FakeBackend()

    def script(req, s):
        shown = responses_in_prompt(req.messages[-1]["content"])
        sample = backend.calls[-1].index(req)
        if len(backend.calls) == 1 and sample in bad_samples:
            return "I think both are fine."  # no score line
        return "Analysis:\nok\nScores: \\boxed{" + ", ".join(str(1 + len(r) // 10) for r in shown) + "}"

    backend.script = script
    return backend


def test_failed_samples_are_counted_never_zero():
    backend = _flaky({0, 2})
    [r] = GenerativeRewardModel(backend, JudgeConfig(k=4)).judge([EX])
    assert (r.k, r.used, r.failed) == (4, 2, 2)
    assert r.rewards == [2, 10, 6, 16]
    failed = [j for j in r.judgments if not j.ok]
    assert all(j.scores is None and j.error.startswith("no_box") for j in failed)


def test_retries_resample_only_the_failures():
    backend = _flaky({1})
    [r] = GenerativeRewardModel(backend, JudgeConfig(k=3, retries=2)).judge([EX])
    assert (r.used, r.failed) == (3, 0)
    assert len(backend.calls) == 2 and len(backend.calls[1]) == 1
    assert backend.calls[1][0].seed != backend.calls[0][1].seed


def test_a_greedy_retry_samples():
    backend = _flaky({0})
    [r] = GenerativeRewardModel(backend, JudgeConfig(k=1, retries=1, temperature=0.5)).judge([EX])
    assert r.failed == 0 and backend.calls[1][0].temperature == 0.5


def test_hinted_sampling_names_the_shown_position():
    backend = FakeBackend()
    grm = GenerativeRewardModel(backend, JudgeConfig())
    [[judgment]] = grm.sample([EX], 1, hints={"e1": 3})
    shown_pos = judgment.order.index(3) + 1
    assert backend.calls[0][0].messages[-1]["content"].endswith(f"the best response is Response {shown_pos}.")


def test_meta_scorer_guides_voting():
    def meta(example, judgments):
        return [1.0 if j.sample < 2 else 0.0 for j in judgments]

    [r] = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=4), meta_scorer=meta).judge([EX])
    assert r.used == 2 and [j.meta for j in r.judgments] == [1.0, 1.0, 0.0, 0.0]


def test_a_100k_character_response_is_cut_to_fit_the_context(caplog):
    huge = Example("big", "Summarise.", ["word " * 20_000, "short"], best=[1], source="in.jsonl:4")
    backend = FakeBackend(context_length=2048)
    grm = GenerativeRewardModel(backend, JudgeConfig(max_new_tokens=256))
    fitted, warnings = grm.fit_to_context(huge)
    assert fitted.responses[1] == "short"
    assert len(fitted.responses[0]) < 8000 and "characters cut to fit" in fitted.responses[0]
    assert len(warnings) == 1 and warnings[0].startswith("in.jsonl:4 [responses[0]]: cut from 100000 to")
    prompt = "\n".join(m["content"] for m in grm._request(fitted, [0, 1], greedy=True, seed=0).messages)
    assert backend.count_tokens(prompt) + 256 <= 2048
    with caplog.at_level("WARNING"):
        [r] = grm.judge([huge])
    assert r.used == 1 and "in.jsonl:4 [responses[0]]" in caplog.text
    untouched, none = grm.fit_to_context(EX)
    assert untouched is EX and none == []


def test_long_chat_context_is_shared_out_and_tiny_contexts_are_refused():
    chat = Example("c", [{"role": "user", "content": "x" * 40_000}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": "And now?"}], ["y" * 40_000, "fine"])
    grm = GenerativeRewardModel(FakeBackend(context_length=4096), JudgeConfig(max_new_tokens=512))
    fitted, warnings = grm.fit_to_context(chat)
    assert [w.split(" ")[2] for w in warnings] == ["[responses[0]]:", "[query[0]]:"]
    assert fitted.query[2]["content"] == "And now?" and fitted.responses[1] == "fine"
    with pytest.raises(InputError, match="lower max_new_tokens"):
        GenerativeRewardModel(FakeBackend(context_length=600), JudgeConfig(max_new_tokens=512)).fit_to_context(chat)
