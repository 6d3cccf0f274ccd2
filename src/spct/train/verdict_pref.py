"""Verdict preference training: a Bradley-Terry loss on the judge's own score readout.

Why: cross-entropy on verdict rows asks the judge for an absolute 8 or 3 for each response,
although a preference label only says which of two responses is better; at 135M that target
stayed at a coin's loss (LoRA or every weight, pairs or one response a row; bench/RESULTS.md).
A Bradley-Terry head on the same backbone and rows does learn, because its loss compares the two
responses of one query, so what the query makes easy or hard cancels out.

This module gives the generative judge that same loss without adding a head. Each response is
judged alone (the pointwise judging prompt, then `Scores: \\boxed{`), and the model's expected
score there, the mean of 1..9 under its next-token probabilities of those digits, is the
scalar reward (less 5, the middle); TRL's RewardTrainer then trains -log sigmoid(s_chosen -
s_rejected) plus a small term that keeps the scores centred. The score
is read from the language-model head, so the trained model is still a GRM: it writes principles
and analysis as before; `--readout anchored` reads this quantity straight after the prompt, where it
was trained, and again at the judgment's own score line, and averages the two.

`--own-lines` also trains the second of those positions: given the judge's own pointwise judgments
of the same responses (`spct meta-data --policy pointwise`), each sample judged for both responses of
a pair adds that pair read after the two judgments' principles and analysis. Why: trained only
straight after the prompt, the reading at the judgment's own line stays near chance on HH, so
half of every anchored score, and all that sampling varies, carries little signal. It pays where the
analyses are about the response judged: on the embedded judge, 400-pair pilots from the shipped judge
gained on gsm against a control with the same extra epoch, and the judge wrote its own score line less
often (bench/RESULTS.md). `--text-weight` adds a language-model loss on those judgments' own
text and on how they end (all but the score, which the Bradley-Terry loss sets), so that training the score after
the analysis does not also rewrite the analysis or the end of the turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data import Example, InputError, InputIssue
from ..format import JudgingFormat
from ..meta_rm import read_meta_rows
from ..score_line import SCORE_PREFIX, last_box_start
from ..settings import non_negative_float, positive_float, positive_int, setting

DIGITS = [str(d) for d in range(1, 10)]  # "10" starts with "1": the first token cannot tell them apart
MIDDLE = 5.0
# The loss sees only score differences, so all scores can drift together; in a pilot they fell from
# 4.8 to 2.3 in 15 steps, towards the end of the scale where the digit softmax saturates and the
# gradient fades. A small penalty on the mean score's distance from the middle holds them there.
CENTRE_WEIGHT = 0.01
# One response a prompt; its expected score read where it was trained (straight after the prompt) and at
# the judgment's own score line, averaged: better than the second alone on held-out HH and gsm (bench/RESULTS.md).
READ_AS = {"policy": "pointwise", "readout": "anchored"}


@dataclass
class VerdictPrefConfig:
    """Settings of `spct train-verdict` (TRL's RewardTrainer underneath); the CLI's flags come from here."""

    model: str = setting("spct-grm-135m", "judge to start from: an embedded name, a folder or a hub id")
    epochs: float = setting(1.0, "passes over the pairs", type=positive_float)
    max_steps: int = setting(-1, "stop after N optimizer steps (-1: epochs decide)")
    learning_rate: float = setting(2e-5, "learning rate, constant after 10 warm-up steps", type=positive_float)
    batch_size: int = setting(8, "pairs per step (twice as many sequences)", type=positive_int)
    grad_accum: int = setting(1, "steps accumulated per optimizer update", type=positive_int)
    max_length: int = setting(448, "tokens of one judged response with its prompt; longer texts are cut "
                                   "(the response keeps its start, the query its end)", type=positive_int)
    train_top_layers: int = setting(15, "decoder blocks that train, counted from the top; the others, the embeddings "
                                        "and the output head stay frozen", type=positive_int)
    text_weight: float = setting(0.0, "weight of a language-model loss on the judge's own judgments in --own-lines "
                                      "pairs (their text, and the end of the line and turn after the score), beside "
                                      "the Bradley-Terry loss: holds what the judge writes in place while the score "
                                      "after it trains (0: off)", type=non_negative_float)
    save_steps: int = setting(25, "checkpoint every N steps (a rerun resumes from the newest)", type=positive_int)
    logging_steps: int = setting(5, "log loss, pair accuracy and margin every N steps", type=positive_int)
    seed: int = setting(0, "seed of the pair order")
    adapter_rank: int | None = setting(None, "also write OUTDIR/adapter, the change from --model as a LoRA adapter "
                                             "of this rank (default: none)", type=positive_int)


def pointwise_pairs(examples: Iterable[Example]) -> list[tuple[Example, Example]]:
    """(chosen alone, rejected alone) for every labelled best response against every other response."""
    pairs = []
    for ex in examples:
        if len(ex.responses) < 2 or not ex.best:
            continue
        alone = [Example(f"{ex.id}/{i}", ex.query, [r], source=ex.source) for i, r in enumerate(ex.responses)]
        pairs += [(alone[b], alone[o]) for b in ex.best for o in range(len(ex.responses)) if o not in ex.best]
    return pairs


#: A judgment split at its score box: (its text up to the box's scores, the rest: its score and what closes the line)
OwnText = tuple[str, str]
#: {judged response id ("EXAMPLE/INDEX"): (that response, {sample: its judgment's OwnText})}
OwnLines = dict[str, tuple[str, dict[int, OwnText]]]


def read_own_lines(path: str | Path) -> tuple[OwnLines, list[InputIssue]]:
    """The judge's own pointwise judgments (`spct meta-data --policy pointwise` output), cut at their score lines.

    Bad lines come back as issues; judgments without a score box are left out (no own line to read).
    """
    rows, issues = read_meta_rows(path)
    own: OwnLines = {}
    for ex, j, _ in rows:
        if len(ex.responses) != 1:
            raise InputError(f"{path}: the judgment of {ex.id} judges {len(ex.responses)} responses; own-line rows "
                             "need one response a judgment (`spct meta-data --policy pointwise`)")
        at = last_box_start(j.text) if j.ok else None
        if at is not None:
            own.setdefault(ex.id, (ex.responses[0], {}))[1][j.sample] = (j.text[:at], j.text[at:])
    return own, issues


class PromptEncoder:
    """Token ids of a response judged alone, up to a score box, cut to `max_length` tokens.

    A text too long is cut where it costs the verdict least: the response keeps its beginning, a
    plain-text query keeps its end (the last turn is the one being answered).
    """

    def __init__(self, tokenizer, max_length: int, fmt: JudgingFormat | None = None):
        self.tok, self.max_length, self.fmt = tokenizer, max_length, fmt or JudgingFormat()

    def _ids(self, ex: Example, head: str) -> tuple[list[int], int]:
        """The ids of prompt and head, and the index of the first token that is the head's alone."""
        text = self.tok.apply_chat_template(self.fmt.messages(ex, [0]), tokenize=False, add_generation_prompt=True)
        ids, prompt = self.tok(text + head, add_special_tokens=False)["input_ids"], self._tokens(text)
        start = next((i for i, (a, b) in enumerate(zip(ids, prompt, strict=False)) if a != b), min(len(ids), len(prompt)))
        return ids, start

    def _tokens(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def __call__(self, ex: Example, head: str = SCORE_PREFIX) -> list[int] | None:
        """The ids, or None when even a cut text does not fit.

        `head` is what the judge wrote before its scores: the bare score box (straight after the prompt) or
        its own principles and analysis up to its score box (`read_own_lines`); it is never cut.
        """
        got = self.with_head_start(ex, head)
        return got[0] if got else None

    def with_head_start(self, ex: Example, head: str = SCORE_PREFIX, reserve: int = 0) -> tuple[list[int], int] | None:
        """As calling the encoder, with the index where the head's tokens start; `reserve` tokens are kept free."""
        ids, start = self._ids(ex, head)
        for _ in range(8):
            excess = len(ids) + reserve - self.max_length
            if excess <= 0:
                return ids, start
            ex = Example(ex.id, *self._cut(ex, excess + 2), source=ex.source)
            ids, start = self._ids(ex, head)
        return None

    def _cut(self, ex: Example, excess: int) -> tuple[Any, list[str]]:
        """(query, [response]) about `excess` tokens shorter, cut from whichever of the two is longer."""
        q, r = ex.query, ex.responses[0]
        r_ids = self._tokens(r)
        turns = [q] if isinstance(q, str) else [m["content"] for m in q]
        if sum(len(self._tokens(t)) for t in turns) <= len(r_ids):
            return q, [self.tok.decode(r_ids[: max(0, len(r_ids) - excess)])]
        if isinstance(q, str):
            q_ids = self._tokens(q)
            return self.tok.decode(q_ids[min(len(q_ids), excess):]), [r]
        if len(q) > 2:  # drop the oldest exchange; the last turn is the one being answered
            return q[2:], [r]
        last = self._tokens(q[-1]["content"])
        return [*q[:-1], {**q[-1], "content": self.tok.decode(last[min(len(last), excess):])}], [r]


def score_readout_model(lm, digit_ids: list[int]):
    """Wrap a causal LM so that it returns one scalar per sequence: its expected score at the last token."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class ScoreReadout(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm
            self.config = lm.config
            self.register_buffer("digit_ids", torch.tensor(digit_ids), persistent=False)
            self.register_buffer("values", torch.arange(1, len(digit_ids) + 1, dtype=torch.float32), persistent=False)

        def __getattr__(self, name: str) -> Any:
            # The trainer also calls PreTrainedModel methods (model tags, config access): the LM's.
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(super().__getattr__("lm"), name)

        def forward(self, input_ids, attention_mask, read_at=None, text_from=None, **_: Any) -> SequenceClassifierOutput:
            """The expected score at each sequence's `read_at` token (default: its last).

            `text_from` (one index a sequence): also return, as `loss`, the language-model loss on its tokens from
            there on, except the score read at `read_at` (the Bradley-Terry loss, not the judge's own sample, sets it).
            """
            hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
            if read_at is None:
                read_at = attention_mask.sum(-1) - 1  # the collator pads on the right
            h = hidden[torch.arange(len(read_at), device=hidden.device), read_at]
            # Only the digit rows of the output head: the full vocabulary would cost ~10% of a step.
            weight = self.lm.get_output_embeddings().weight[self.digit_ids]
            probs = torch.nn.functional.linear(h, weight).float().softmax(-1)
            text_loss = None if text_from is None else self._text_loss(hidden, input_ids, attention_mask, text_from, read_at)
            # Centred on the middle digit, so RewardTrainer's centring term holds scores there (below).
            return SequenceClassifierOutput(loss=text_loss, logits=(probs @ self.values - MIDDLE)[:, None])

        def _text_loss(self, hidden, input_ids, attention_mask, text_from, read_at):
            """Mean next-token cross-entropy over the tokens at or after `text_from`, but for the one after `read_at`."""
            at = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
            target = ((at >= text_from[:, None]) & (at != read_at[:, None] + 1) & attention_mask.bool())[:, 1:]
            if not target.any():
                return hidden.sum() * 0.0  # a batch of straight pairs only: nothing to hold
            logits = self.lm.get_output_embeddings()(hidden[:, :-1][target]).float()
            return torch.nn.functional.cross_entropy(logits, input_ids[:, 1:][target])

    return ScoreReadout()


def freeze_below(lm, top_layers: int) -> int:
    """Leave only the top `top_layers` decoder blocks and the final norm trainable; return trainable params."""
    for p in lm.parameters():
        p.requires_grad_(False)
    blocks = lm.get_decoder().layers
    for block in blocks[max(0, len(blocks) - top_layers):]:
        block.requires_grad_(True)
    lm.get_decoder().norm.requires_grad_(True)
    return sum(p.numel() for p in lm.parameters() if p.requires_grad)


def train_verdict_pref(examples: list[Example], out_dir: str | Path, config: VerdictPrefConfig,
                       resume: bool = False, own_lines: OwnLines | None = None) -> dict[str, Any]:
    """Train `config.model` with the Bradley-Terry loss on its score readout; save the model to out_dir.

    `own_lines` (`read_own_lines`): also train each pair at the judge's own score lines, once for each sample
    judged for both of its responses.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from ..backends.models import JUDGING_FILE, resolve_model
    from .sft import LOG_FILE

    pairs = pointwise_pairs(examples)  # before any model loads: data without pairs is refused at once
    where = examples[0].source.rsplit(":", 1)[0] if examples and examples[0].source else "the data"
    if not pairs:
        raise InputError(f"{where}: no labelled pairs to train on (examples need 'best' and at least two responses)")
    if config.text_weight and own_lines is None:
        raise InputError("--text-weight holds the text of the judge's own judgments: give them with --own-lines")
    own_pairs = _own_line_pairs(pairs, own_lines, where) if own_lines is not None else []
    base, gguf = resolve_model(config.model)
    load = {"gguf_file": gguf} if gguf else {}
    tok = AutoTokenizer.from_pretrained(base, **load)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    digit_ids = tok.convert_tokens_to_ids(DIGITS)
    if any(i is None or i == tok.unk_token_id for i in digit_ids):
        raise InputError(f"{config.model}: the tokenizer has no single token for each digit 1..9")
    encode = PromptEncoder(tok, config.max_length)
    straight = (SCORE_PREFIX, "")
    rows, skipped = _encode_pairs(encode, [(c, r, straight, straight) for c, r in pairs], hold_text=False)
    own_rows, own_skipped = _encode_pairs(encode, own_pairs, hold_text=config.text_weight > 0)
    lm = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **load)
    lm.config.num_labels = 1  # RewardTrainer's check for a one-scalar model
    trainable = freeze_below(lm, config.train_top_layers)
    model = score_readout_model(lm, digit_ids)
    args = RewardConfig(
        output_dir=str(out_dir), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, seed=config.seed, logging_steps=config.logging_steps,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, report_to="none",
        max_length=None, use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=False,
        lr_scheduler_type="constant_with_warmup", warmup_steps=10,
        center_rewards_coefficient=CENTRE_WEIGHT,
        gradient_checkpointing=False,  # memory is not the limit at this size; recomputing would cost ~25%
    )
    trainer = _readout_trainer(RewardTrainer, config.text_weight)(
        model=model, args=args, train_dataset=Dataset.from_list(rows + own_rows), processing_class=tok,
        data_collator=_held_text_collator(tok.pad_token_id) if config.text_weight else None)
    last = _last_checkpoint(out_dir) if resume else None
    result = trainer.train(resume_from_checkpoint=last)
    lm.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    (Path(out_dir) / LOG_FILE).write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")  # for plots
    # Read it as it was trained (`spct judge --model OUT_DIR` takes these unless flags say otherwise).
    (Path(out_dir) / JUDGING_FILE).write_text(json.dumps(READ_AS, indent=2) + "\n")
    summary = {"pairs": len(rows), "skipped_too_long": skipped, "trainable_params": trainable,
               **({"own_line_pairs": len(own_rows), "own_line_skipped_too_long": own_skipped} if own_lines else {}),
               "steps": result.global_step, "train_loss": round(result.training_loss, 4), **asdict(config)}
    if config.adapter_rank:
        from .adapters import extract_adapter

        summary["adapter"] = extract_adapter(base, out_dir, Path(out_dir) / "adapter", config.adapter_rank)
    (Path(out_dir) / "spct_verdict_pref.json").write_text(json.dumps(summary, indent=2))
    return summary


def _encode_pairs(encode: PromptEncoder, pairs: list[tuple[Example, Example, OwnText, OwnText]],
                  hold_text: bool) -> tuple[list[dict], int]:
    """RewardTrainer rows of (chosen, rejected, chosen's judgment, rejected's), and how many did not fit.

    Each side is read at the end of its judgment's head. With `hold_text` (`--text-weight`, own judgments) the rest of
    the judgment and the end of the turn follow it, and the row says where the judgment starts, so that the text to
    hold spans what the judge wrote and how it stopped; otherwise nothing follows and there is no text to hold
    (a bare score box straight after the prompt is not something the judge should learn to write).
    """
    tok = encode.tok
    end = [tok.eos_token_id] if tok.eos_token_id is not None else []

    def side(name: str, ex: Example, own: OwnText) -> dict[str, Any] | None:
        head, tail = own
        after = tok(tail, add_special_tokens=False)["input_ids"] + end if hold_text else []
        got = encode.with_head_start(ex, head, reserve=len(after))
        if got is None:
            return None
        ids, start = got
        return {f"{name}_ids": ids + after, f"{name}_read_at": len(ids) - 1,
                f"{name}_text_from": start if hold_text else len(ids)}

    rows, skipped = [], 0
    for chosen, rejected, c_own, r_own in pairs:
        c, r = side("chosen", chosen, c_own), side("rejected", rejected, r_own)
        if c is None or r is None:
            skipped += 1
            continue
        rows.append(c | r)
    return rows, skipped


def _own_line_pairs(pairs: list[tuple[Example, Example]], own_lines: OwnLines,
                    where: str) -> list[tuple[Example, Example, OwnText, OwnText]]:
    """(chosen, rejected, chosen's judgment, rejected's) for each sample judged for both responses of a pair.

    A judgment whose response is not the one in the data (the file judged other data) is refused.
    """
    out = []
    for chosen, rejected in pairs:
        judged = [own_lines.get(ex.id) for ex in (chosen, rejected)]
        for ex, got in zip((chosen, rejected), judged, strict=True):
            if got is not None and got[0] != ex.responses[0]:
                raise InputError(f"the own-line judgment of {ex.id} judged another response than {where} holds; "
                                 "were they sampled from this data?")
        if judged[0] is None or judged[1] is None:
            continue
        out += [(chosen, rejected, judged[0][1][s], judged[1][1][s]) for s in sorted(judged[0][1].keys() & judged[1][1].keys())]
    if not out:
        raise InputError(f"no own-line judgment belongs to a pair of {where} (ids 'EXAMPLE/INDEX', one response each, "
                         "both responses of a pair judged with the same sample number)")
    return out


#: Per-sequence indices a row carries beside its ids when its judgment's text is held (`_encode_pairs`).
HELD_TEXT_COLUMNS = ("read_at", "text_from")


def _held_text_collator(pad_token_id: int):
    """TRL's preference collator, also passing where each sequence is read and where its text to hold starts."""
    import torch
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class HeldTextCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            out = super().torch_call(examples)
            for name in HELD_TEXT_COLUMNS:  # chosen, then rejected, as the ids
                out[name] = torch.tensor([e[f"chosen_{name}"] for e in examples] + [e[f"rejected_{name}"] for e in examples])
            return out

    return HeldTextCollator(pad_token_id=pad_token_id)


def _readout_trainer(base: type, text_weight: float = 0.0) -> type:
    """RewardTrainer whose checkpoints hold the language model itself (a folder any engine loads).

    With `text_weight`, its loss adds that weight times the model's language-model loss on the judge's own text.
    """

    class ReadoutTrainer(base):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if text_weight:
                self._signature_columns = [*self._signature_columns,
                                           *(f"{side}_{name}" for side in ("chosen", "rejected") for name in HELD_TEXT_COLUMNS)]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            if outputs.loss is not None:
                loss = loss + text_weight * outputs.loss
                self._metrics["train" if model.training else "eval"]["text_loss"].append(outputs.loss.item())
            return (loss, outputs) if return_outputs else loss

        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            folder = output_dir or self.args.output_dir
            self.model.lm.save_pretrained(folder)
            self.processing_class.save_pretrained(folder)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            from safetensors.torch import load_file

            state = load_file(str(Path(resume_from_checkpoint) / "model.safetensors"))
            missing, unexpected = self.model.lm.load_state_dict(state, strict=False)
            if unexpected or set(missing) - {"lm_head.weight"}:  # a tied head is saved once
                raise InputError(f"{resume_from_checkpoint}: not a checkpoint of this model "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    return ReadoutTrainer


def _last_checkpoint(out_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out_dir)) if Path(out_dir).is_dir() else None
