"""Hugging Face transformers engine: the embedded default, CPU or one GPU.

Batches all samples of all requests into left-padded `generate` calls. With a
`ScoreConstraint`, generation runs in two phases (driven by `Backend.generate`): the model first
writes freely (principles and analysis); rows whose text already ends in a valid score box are
kept as written, the others lose their broken score line (if any) and are continued from a
forced `Scores: \\boxed{` under a logits processor that admits only `count` integers in lo..hi
and the closing brace. With `reuse_kv` (the default) the forced continuation starts from the
free phase's KV cache, so it reads only the few tokens after the shared prefix instead of
prompt + judgment again (bench/kv_forced.py measures both). Prompts are encoded with
`encode_chat`, so special-token strings inside judged text stay text.
"""

from __future__ import annotations

import inspect
import logging

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
)

from ..score_scale import ascii_int
from .base import (
    Backend,
    Continuation,
    Generation,
    GenerationRequest,
    HFTokenizerMixin,
    ScoreConstraint,
    ScoreQuery,
    common_prefix_len,
)
from .models import ModelNotFound, resolve_model
from .score_line import constraint_satisfied, forced_prompt_tail, score_budget

log = logging.getLogger(__name__)


def _number_prefix_ok(q: str, lo: int, hi: int) -> bool:
    return q == "" or (q.isascii() and q.isdigit() and any(str(v).startswith(q) for v in range(lo, hi + 1)))


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
            if (value := ascii_int(num)) is None or not c.lo <= value <= c.hi:
                return False
        elif not last:
            if (value := ascii_int(q)) is None or not c.lo <= value <= c.hi:
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
    reads_logprobs = True

    def __init__(self, model: str = "smollm2-135m", *, device: str | None = None, batch_size: int = 16, dtype: str | None = None,
                 reuse_kv: bool = True):
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
        self.reuse_kv = reuse_kv
        self._forced_ahead: dict[tuple[int, int], tuple[str, int]] = {}
        # The forward's KV-cache argument: `cache` from transformers 5.x, `past_key_values` before.
        self._cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    # -- prompts --------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
        return text + "\n\nAssistant: "

    # -- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def _run(self, prompts: list[list[int]], temperature: float, max_new_tokens: int, seed: int,
             constraints: list[ScoreConstraint] | None = None, state: dict | None = None) -> list[tuple[str, int, bool]]:
        """One left-padded batch of token-id prompts -> (text, new tokens, hit the token limit) per prompt.

        Given a `state` dict, it receives the batch's attention mask, sequences and KV cache.
        """
        enc = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        start = enc["input_ids"].shape[1]
        kwargs = self._sampling(temperature, max_new_tokens, seed)
        if constraints is not None:
            if self._score_tokens is None:
                self._score_tokens = ScoreLineProcessor.score_tokens(self.tokenizer)
            processor = ScoreLineProcessor(self.tokenizer, constraints, start, self._score_tokens)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        if state is not None:
            full = self.model.generate(**enc, **kwargs, return_dict_in_generate=True)
            cache = getattr(full, "cache", None)  # renamed from past_key_values in transformers 5.x
            state.update(mask=enc["attention_mask"], sequences=full.sequences,
                         cache=cache if cache is not None else full.past_key_values)
            out = full.sequences[:, start:]
        else:
            out = self.model.generate(**enc, **kwargs)[:, start:]
        return [self._decoded(row, max_new_tokens) for row in out]

    def _sampling(self, temperature: float, max_new_tokens: int, seed: int) -> dict:
        """generate() keywords: seeded sampling at `temperature`, or greedy at 0."""
        kwargs: dict = {"max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _decoded(self, row: torch.Tensor, max_new_tokens: int) -> tuple[str, int, bool]:
        ended = (row == self.tokenizer.eos_token_id).nonzero()
        n_new = int(ended[0]) + 1 if len(ended) else int((row != self.tokenizer.pad_token_id).sum())
        return self.tokenizer.decode(row, skip_special_tokens=True), n_new, len(ended) == 0 and n_new >= max_new_tokens

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
        """Free text; with `reuse_kv`, a batch's failing score lines are forced at once from its KV cache."""
        self._forced_ahead.clear()
        # (request index, request, rendered prompt); the text orders batches, `encode_chat` feeds the model.
        rows: list[tuple[int, GenerationRequest, str]] = []
        samples: list[int] = []  # sample index of each row within its request
        for i, req in enumerate(requests):
            rows += [(i, req, self.render(req.messages))] * req.n
            samples += range(req.n)
        gens: list[Generation] = [Generation("")] * len(rows)
        for chunk in self._batches(list(range(len(rows))), rows):
            req0 = rows[chunk[0]][1]
            state: dict | None = {} if self.reuse_kv and any(rows[j][1].constraint for j in chunk) else None
            done = self._run([self.encode_chat(rows[j][1].messages) for j in chunk], req0.temperature, req0.max_new_tokens,
                             req0.seed + chunk[0], state=state)
            for j, (text, n_new, hit) in zip(chunk, done, strict=True):
                gens[j] = Generation(text, "length" if hit else "stop", False, n_new)
            if state:
                self._force_from_cache([(r, j, samples[j]) for r, j in enumerate(chunk)], rows, gens, state)
        out: list[list[Generation]] = [[] for _ in requests]
        for (i, _, _), g in zip(rows, gens, strict=True):
            out[i].append(g)
        return out

    @torch.inference_mode()
    def _force_from_cache(self, batch: list[tuple[int, int, int]], rows, gens: list[Generation], state: dict) -> None:
        """Force the score line of each row of a finished batch that needs it, continuing from the batch's KV cache.

        The continuation's tokens (prompt + free text up to its score line + the forced prefix)
        share a prefix with what the batch already read; that prefix is sliced out of the cache
        (left padding dropped), so only the few tokens after it are read again. The results wait
        in `_forced_ahead` for `generate_forced`, which `Backend.generate` calls for the same rows.
        """
        cache = state["cache"]
        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            return  # sliding-window or other caches: generate_forced re-reads instead
        if self._score_tokens is None:
            self._score_tokens = ScoreLineProcessor.score_tokens(self.tokenizer)
        cached_len = cache.get_seq_length()
        for r, j, sample in batch:
            req = rows[j][1]
            c = req.constraint
            if c is None or constraint_satisfied(gens[j].text, c):
                continue
            _, prefill = forced_prompt_tail(gens[j].text, c)
            target = self.encode_chat(req.messages, prefill)
            pad = int((state["mask"][r] == 0).sum())
            seen = state["sequences"][r, pad:cached_len].tolist()
            common = min(common_prefix_len(seen, target), len(target) - 1)  # generate needs at least one token to read
            row_cache = DynamicCache(ddp_cache_data=[(layer.keys[r : r + 1, :, pad : pad + common],
                                                      layer.values[r : r + 1, :, pad : pad + common]) for layer in layers])
            ids = torch.tensor([target], device=self.device)
            kwargs = self._sampling(req.temperature, score_budget(c), req.seed + 7919 + sample)
            processor = ScoreLineProcessor(self.tokenizer, [c], len(target), self._score_tokens)
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=row_cache,
                                      logits_processor=LogitsProcessorList([processor]), **kwargs)
            tail, n_new, _ = self._decoded(out[0, len(target):], score_budget(c))
            self._forced_ahead[(id(req), sample)] = (tail, n_new)

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """Tails forced from the KV cache during `generate_free`, else re-read prompt + free text + prefix."""
        out: list[tuple[str, int] | None] = [self._forced_ahead.pop((id(c.request), c.sample), None) for c in continuations]
        self._forced_ahead.clear()
        rows = [(j, c.request, self.render(c.request.messages) + c.prefill) for j, c in enumerate(continuations)]
        for chunk in self._batches([j for j, o in enumerate(out) if o is None], rows):
            cons = [rows[j][1].constraint for j in chunk]
            req0, c0 = rows[chunk[0]][1], continuations[chunk[0]]
            budget = max(score_budget(c) for c in cons)  # type: ignore[arg-type]
            prompts = [self.encode_chat(rows[j][1].messages, continuations[j].prefill) for j in chunk]
            done = self._run(prompts, req0.temperature, budget, req0.seed + 7919 + c0.sample, cons)  # type: ignore[arg-type]
            for j, (tail, n_new, _) in zip(chunk, done, strict=True):
                out[j] = (tail, n_new)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def continuation_logprobs(self, queries: list[ScoreQuery]) -> list[list[float]]:
        """Read each prompt + prefill once, then every candidate's few tokens from that KV cache, as one batch."""
        out = []
        for q in queries:
            context = self.encode_chat(q.messages, q.prefill)
            fulls = [self.encode_chat(q.messages, q.prefill + c) for c in q.candidates]
            # Tokens shared by the context and every candidate (a candidate may merge with the prefill's last token).
            common = max(1, min(min(common_prefix_len(context, f), len(f) - 1) for f in fulls))
            head = self.model(input_ids=torch.tensor([context[:common]], device=self.device), use_cache=True)
            cache = getattr(head, "cache", None) or head.past_key_values  # renamed in transformers 5.x
            first = torch.log_softmax(head.logits[0, -1].float(), -1)
            tails = [f[common:] for f in fulls]
            width = max(len(t) for t in tails)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], device=self.device)
            mask = torch.tensor([[1] * (common + len(t)) + [0] * (width - len(t)) for t in tails], device=self.device)
            cache.batch_repeat_interleave(len(tails))
            kw = {self._cache_kwarg: cache}
            rest = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask, **kw).logits.float(), -1)
            out.append([first[t[0]].item() + sum(rest[r, i - 1, t[i]].item() for i in range(1, len(t)))
                        for r, t in enumerate(tails)])
        return out
