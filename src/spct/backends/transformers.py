"""Hugging Face transformers engine: the embedded default, CPU or one GPU.

Batches all samples of all requests into left-padded `generate` calls. With a
`ScoreConstraint`, generation runs in two phases (driven by `Backend.generate`): the model first
writes freely (principles and analysis); rows whose text already ends in a valid score box are
kept as written, the others lose their broken score line (if any) and are continued from a
forced `Scores: \\boxed{` under a logits processor that admits only `count` integers in lo..hi
and the closing brace.
"""

from __future__ import annotations

import logging

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from .base import (
    Backend,
    Continuation,
    Generation,
    GenerationRequest,
    HFTokenizerMixin,
    ScoreConstraint,
)
from .models import ModelNotFound, resolve_model
from .score_line import score_budget

log = logging.getLogger(__name__)


def _number_prefix_ok(q: str, lo: int, hi: int) -> bool:
    return q == "" or (q.isdigit() and any(str(v).startswith(q) for v in range(lo, hi + 1)))


def viable_score_text(t: str, c: ScoreConstraint) -> bool:
    """Is `t` a prefix of `a, b, ..., z}` with c.count integers in c.lo..c.hi?"""
    parts = t.split(",")
    if len(parts) > c.count:
        return False
    for i, part in enumerate(parts):
        if i == 0 and part.startswith(" "):
            return False
        q = part[1:] if i > 0 and part.startswith(" ") else part
        if q.startswith(" "):
            return False
        last = i == len(parts) - 1
        if "}" in q:
            num, _, rest = q.partition("}")
            if not last or rest or i != c.count - 1:
                return False
            if not (num.isdigit() and c.lo <= int(num) <= c.hi):
                return False
        elif not last:
            if not (q.isdigit() and c.lo <= int(q) <= c.hi):
                return False
        elif not _number_prefix_ok(q, c.lo, c.hi):
            return False
    return True


class ScoreLineProcessor(LogitsProcessor):
    """Masks every token that would break the score line; after the `}`, only EOS."""

    def __init__(self, tokenizer, constraints: list[ScoreConstraint], start: int, candidates: list[tuple[int, str]]):
        self.tok = tokenizer
        self.constraints = constraints
        self.start = start
        self.eos = tokenizer.eos_token_id
        self.candidates = candidates

    @staticmethod
    def score_tokens(tokenizer) -> list[tuple[int, str]]:
        """(id, text) of every token made only of digits, commas, spaces and `}`."""
        alphabet = set("0123456789, }")
        found = []
        for tid in range(len(tokenizer)):
            s = tokenizer.decode([tid])
            if s and set(s) <= alphabet:
                found.append((tid, s))
        return found

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row in range(input_ids.shape[0]):
            c = self.constraints[row]
            so_far = self.tok.decode(input_ids[row, self.start:], skip_special_tokens=True)
            if so_far.endswith("}") or not viable_score_text(so_far, c):
                mask[row, self.eos] = 0
                continue
            allowed = [tid for tid, s in self.candidates if viable_score_text(so_far + s, c)]
            mask[row, allowed] = 0
        return scores + mask


class TransformersBackend(HFTokenizerMixin, Backend):
    name = "transformers"

    def __init__(self, model: str = "smollm2-135m", *, device: str | None = None, batch_size: int = 16, dtype: str | None = None):
        path, gguf_file = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device == "cuda" else torch.float32)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, **kw)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kw).to(self.device).eval()
        except (OSError, ValueError) as e:  # not found offline, not a causal LM, unsupported GGUF
            raise ModelNotFound(f"cannot load model {model!r}: {e}") from e
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self.model_name = model
        self._score_tokens: list[tuple[int, str]] | None = None  # built on first constrained call

    # -- prompts --------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
        return text + "\n\nAssistant: "

    # -- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def _run(self, prompts: list[str], temperature: float, max_new_tokens: int, seed: int,
             constraints: list[ScoreConstraint] | None = None) -> list[tuple[str, int, bool]]:
        """One left-padded batch -> (text, new tokens, hit the token limit) per prompt."""
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        start = enc["input_ids"].shape[1]
        kwargs: dict = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if constraints is not None:
            if self._score_tokens is None:
                self._score_tokens = ScoreLineProcessor.score_tokens(self.tokenizer)
            processor = ScoreLineProcessor(self.tokenizer, constraints, start, self._score_tokens)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        out = self.model.generate(**enc, **kwargs)[:, start:]
        results = []
        for row in out:
            ended = (row == self.tokenizer.eos_token_id).nonzero()
            n_new = int(ended[0]) + 1 if len(ended) else int((row != self.tokenizer.pad_token_id).sum())
            results.append((self.tokenizer.decode(row, skip_special_tokens=True), n_new, len(ended) == 0 and n_new >= max_new_tokens))
        return results

    def _batches(self, indices: list[int], rows) -> list[list[int]]:
        """Chunks of at most batch_size rows that share temperature and token budget.

        Rows are taken in prompt-length order so one long prompt does not pad a whole batch.
        """
        groups: dict[tuple[float, int], list[int]] = {}
        for j in sorted(indices, key=lambda j: len(rows[j][2])):
            req = rows[j][1]
            groups.setdefault((req.temperature, req.max_new_tokens), []).append(j)
        return [g[b : b + self.batch_size] for g in groups.values() for b in range(0, len(g), self.batch_size)]

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        rows: list[tuple[int, GenerationRequest, str]] = []  # (request index, request, rendered prompt)
        for i, req in enumerate(requests):
            rows += [(i, req, self.render(req.messages))] * req.n
        gens: list[Generation] = [Generation("")] * len(rows)
        for chunk in self._batches(list(range(len(rows))), rows):
            req0 = rows[chunk[0]][1]
            done = self._run([rows[j][2] for j in chunk], req0.temperature, req0.max_new_tokens, req0.seed + chunk[0])
            for j, (text, n_new, hit) in zip(chunk, done, strict=True):
                gens[j] = Generation(text, "length" if hit else "stop", False, n_new)
        out: list[list[Generation]] = [[] for _ in requests]
        for (i, _, _), g in zip(rows, gens, strict=True):
            out[i].append(g)
        return out

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """Re-read prompt + free text + forced prefix, then decode under the score-line logits processor."""
        rows = [(j, c.request, self.render(c.request.messages) + c.prefill) for j, c in enumerate(continuations)]
        out: list[tuple[str, int]] = [("", 0)] * len(rows)
        for chunk in self._batches(list(range(len(rows))), rows):
            cons = [rows[j][1].constraint for j in chunk]
            req0, c0 = rows[chunk[0]][1], continuations[chunk[0]]
            budget = max(score_budget(c) for c in cons)  # type: ignore[arg-type]
            done = self._run([rows[j][2] for j in chunk], req0.temperature, budget, req0.seed + 7919 + c0.sample, cons)  # type: ignore[arg-type]
            for j, (tail, n_new, _) in zip(chunk, done, strict=True):
                out[j] = (tail, n_new)
        return out
