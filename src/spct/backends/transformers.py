"""Hugging Face transformers engine: the embedded default, CPU or one GPU.

Batches all samples of all requests into left-padded `generate` calls. With a
`ScoreConstraint`, generation runs in two phases: the model first writes freely (principles
and analysis); rows whose text already ends in a valid score box are kept as written, the
others are cut before any score line and continued from a forced `Scores: \\boxed{` under a
logits processor that admits only `count` integers in lo..hi and the closing brace.
"""

from __future__ import annotations

import logging
import re

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from .base import Backend, Generation, GenerationRequest, ScoreConstraint
from .models import resolve_model

log = logging.getLogger(__name__)

_SCORE_LABEL = re.compile(r"(?:\*\*)?\bscores?(?:\*\*)?\s*:?\s*$", re.IGNORECASE)


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


def constraint_satisfied(text: str, c: ScoreConstraint) -> bool:
    """True when the last `\\boxed{...}` of `text` already holds a valid score list."""
    boxes = re.findall(r"\\boxed\s*\{([^{}]*)\}", text)
    if not boxes:
        return False
    items = [x.strip() for x in boxes[-1].split(",")]
    return len(items) == c.count and all(x.isdigit() and c.lo <= int(x) <= c.hi for x in items)


def score_token_candidates(tokenizer) -> list[tuple[int, str]]:
    """(token id, text) of every token made only of digits, commas, spaces and `}`."""
    alphabet = set("0123456789, }")
    out = []
    for tid in range(len(tokenizer)):
        s = tokenizer.decode([tid])
        if s and set(s) <= alphabet:
            out.append((tid, s))
    return out


class ScoreLineProcessor(LogitsProcessor):
    """Masks every token that would break the score line; after the `}`, only EOS."""

    def __init__(self, tokenizer, constraints: list[ScoreConstraint], start: int,
                 candidates: list[tuple[int, str]] | None = None):
        self.tok = tokenizer
        self.constraints = constraints
        self.start = start
        self.eos = tokenizer.eos_token_id
        # Scanning the vocabulary takes a noticeable fraction of a second: callers pass it in once computed.
        self.candidates = candidates if candidates is not None else score_token_candidates(tokenizer)

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


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model: str = "smollm2-135m", *, device: str | None = None, batch_size: int = 16, dtype: str | None = None):
        path, gguf_file = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device == "cuda" else torch.float32)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kw).to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)
        self.model_name = model
        self._score_candidates: list[tuple[int, str]] | None = None

    # -- tokens ---------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

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
            if self._score_candidates is None:
                self._score_candidates = score_token_candidates(self.tokenizer)
            processor = ScoreLineProcessor(self.tokenizer, constraints, start, self._score_candidates)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        out = self.model.generate(**enc, **kwargs)[:, start:]
        results = []
        for row in out:
            ended = (row == self.tokenizer.eos_token_id).nonzero()
            n_new = int(ended[0]) + 1 if len(ended) else int((row != self.tokenizer.pad_token_id).sum())
            results.append((self.tokenizer.decode(row, skip_special_tokens=True), n_new, len(ended) == 0 and n_new >= max_new_tokens))
        return results

    def _batches(self, indices: list[int], rows) -> list[list[int]]:
        """Chunks of at most batch_size rows that share temperature and token budget."""
        groups: dict[tuple[float, int], list[int]] = {}
        for j in indices:
            req = rows[j][1]
            groups.setdefault((req.temperature, req.max_new_tokens), []).append(j)
        return [g[b : b + self.batch_size] for g in groups.values() for b in range(0, len(g), self.batch_size)]

    def generate(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        rows: list[tuple[int, GenerationRequest, str]] = []  # (request index, request, rendered prompt)
        for i, req in enumerate(requests):
            prompt = self.render(req.messages)
            # Greedy samples are identical: generate once, copy.
            rows += [(i, req, prompt)] * (req.n if req.temperature > 0 else 1)
        gens: list[Generation] = [Generation("")] * len(rows)
        for chunk in self._batches(list(range(len(rows))), rows):
            req0 = rows[chunk[0]][1]
            done = self._run([rows[j][2] for j in chunk], req0.temperature, req0.max_new_tokens, req0.seed + chunk[0])
            for j, (text, n_new, hit) in zip(chunk, done, strict=True):
                gens[j] = Generation(text, "length" if hit else "stop", False, n_new)
        self._force_score_lines(rows, gens)
        out: list[list[Generation]] = [[] for _ in requests]
        for (i, _, _), g in zip(rows, gens, strict=True):
            out[i].append(g)
        for i, req in enumerate(requests):
            if req.temperature <= 0 and req.n > 1:
                g = out[i][0]
                out[i] = [Generation(g.text, g.finish_reason, g.forced, g.new_tokens) for _ in range(req.n)]
        return out

    def _force_score_lines(self, rows, gens: list[Generation]) -> None:
        todo = [j for j, (_, req, _) in enumerate(rows) if req.constraint and not constraint_satisfied(gens[j].text, req.constraint)]
        for chunk in self._batches(todo, rows):
            heads, prompts, cons = [], [], []
            for j in chunk:
                _, req, prompt = rows[j]
                head = gens[j].text
                cut = head.rfind("\\boxed")
                head = head[:cut] if cut >= 0 else head
                head = _SCORE_LABEL.sub("", head.rstrip()).rstrip()
                heads.append(head)
                prompts.append(prompt + head + "\n" + req.constraint.prefix)
                cons.append(req.constraint)
            req0 = rows[chunk[0]][1]
            budget = 4 * max(c.count for c in cons) + 4
            done = self._run(prompts, req0.temperature, budget, req0.seed + 7919 + chunk[0], cons)
            for j, head, c, (tail, n_new, _) in zip(chunk, heads, cons, done, strict=True):
                g = gens[j]
                g.text = f"{head}\n{c.prefix}{tail}"
                g.forced = True
                g.new_tokens += n_new
