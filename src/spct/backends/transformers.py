"""Hugging Face transformers engine: the embedded default, CPU or one GPU.

Batches all samples of all requests into left-padded `generate` calls. With a
`ScoreConstraint`, generation runs in two phases (driven by `Backend.generate`): the model first
writes freely (principles and analysis); rows whose text already ends in a valid score box are
kept as written, the others lose their broken score line (if any) and are continued from a
forced `Scores: \\boxed{` under a logits processor that admits only `count` integers in lo..hi
and the closing brace. With `reuse_kv` (the default) the forced continuation starts from the
free phase's KV cache, so it reads only the few tokens after the shared prefix instead of
prompt + judgment again (bench/kv_forced.py measures both); the rows of a batch that need it are
forced together, in one `generate`. Prompts are encoded with `encode_chat`, so special-token
strings inside judged text stay text.

Samples that share a prompt share its prefill: k voting samples of a two-response example have
at most two distinct prompts (one per response order), so a batch reads each distinct prompt
once and copies its KV cache to the samples that show it before decoding them apart
(bench/engine_sharing.py measures it). Batches keep such samples together.
"""

from __future__ import annotations

import inspect
import logging
from functools import cached_property

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Cache,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
)

from ..score_line import (
    ScoreConstraint,
    ascii_int,
    constraint_satisfied,
    forced_prompt_tail,
    score_budget,
)
from .base import (
    Backend,
    Continuation,
    Generation,
    GenerationRequest,
    HFTokenizerMixin,
    ScoreQuery,
    common_prefix_len,
)
from .models import ModelNotFound, resolve_model

log = logging.getLogger(__name__)


def _number_prefix_ok(q: str, lo: int, hi: int) -> bool:
    return q == "" or (q.isascii() and q.isdigit() and any(str(v).startswith(q) for v in range(lo, hi + 1)))


def _distinct(prompts: list[list[int]]) -> tuple[list[int], list[int]]:
    """(the first row of each distinct prompt, the distinct prompt of each row)."""
    index: dict[tuple[int, ...], int] = {}
    first: list[int] = []
    where: list[int] = []
    for r, p in enumerate(prompts):
        key = tuple(p)
        if key not in index:
            index[key] = len(first)
            first.append(r)
        where.append(index[key])
    return first, where


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
        self.share_prefill = True  # off only to check that sharing changes no output (tests, bench/engine_sharing.py)

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

        Rows with the same prompt share its prefill (`_shared_prefill`). Given a `state` dict, it
        receives the batch's attention mask, sequences and KV cache.
        """
        enc = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(self.device)
        start = enc["input_ids"].shape[1]
        kwargs = self._sampling(temperature, max_new_tokens, seed)
        if constraints is not None:
            if self._score_tokens is None:
                self._score_tokens = ScoreLineProcessor.score_tokens(self.tokenizer)
            processor = ScoreLineProcessor(self.tokenizer, constraints, start, self._score_tokens)
            kwargs["logits_processor"] = LogitsProcessorList([processor])
        first, where = _distinct(prompts)
        if self.share_prefill and len(first) < len(prompts) and start > 1:
            kwargs[self._cache_kwarg] = self._shared_prefill(enc["input_ids"], enc["attention_mask"], first, where)
        if state is not None:
            full = self.model.generate(**enc, **kwargs, return_dict_in_generate=True)
            cache = getattr(full, "cache", None)  # renamed from past_key_values in transformers 5.x
            state.update(mask=enc["attention_mask"], sequences=full.sequences,
                         cache=cache if cache is not None else full.past_key_values)
            out = full.sequences[:, start:]
        else:
            out = self.model.generate(**enc, **kwargs)[:, start:]
        return [self._decoded(row, max_new_tokens) for row in out]

    def _shared_prefill(self, ids: torch.Tensor, mask: torch.Tensor, first: list[int], where: list[int]) -> Cache:
        """The KV cache of every row's prompt but its last token, computed once per distinct prompt.

        `first[u]` is a row showing distinct prompt u, `where[r]` the distinct prompt of row r. The
        distinct rows are read with the positions `generate` would give them (left padding
        skipped), then the cache's batch is expanded to one copy per row, so `generate` reads
        only each row's last prompt token before sampling the rows apart.
        """
        rows = torch.tensor(first, device=ids.device)
        head, head_mask = ids[rows, :-1], mask[rows, :-1]
        positions = (head_mask.cumsum(-1) - 1).masked_fill(head_mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        self.model.base_model(input_ids=head, attention_mask=head_mask, position_ids=positions, use_cache=True,
                              **{self._cache_kwarg: cache})
        cache.batch_select_indices(torch.tensor(where, device=ids.device))
        return cache

    @cached_property
    def _cache_kwarg(self) -> str:
        """The KV-cache keyword of forward and generate: `cache` from transformers 5.x, `past_key_values` before."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

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

    def _batches(self, rows: list[tuple[GenerationRequest, list[int]]], indices: list[int] | None = None) -> list[list[int]]:
        """Chunks of at most batch_size rows (request, prompt ids) that share temperature and token budget.

        Rows are taken in prompt-length order so one long prompt does not pad a whole batch, and
        rows with the same prompt stay next to each other so that a batch prefills it once.
        """
        indices = list(range(len(rows))) if indices is None else indices
        first: dict[tuple[int, ...], int] = {}
        seen = [first.setdefault(tuple(rows[j][1]), j) for j in indices]
        groups: dict[tuple[float, int], list[int]] = {}
        for _, _, j in sorted(zip((len(rows[j][1]) for j in indices), seen, indices, strict=True)):
            req = rows[j][0]
            groups.setdefault((req.temperature, req.max_new_tokens), []).append(j)
        return [g[b : b + self.batch_size] for g in groups.values() for b in range(0, len(g), self.batch_size)]

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        """Free text; with `reuse_kv`, a batch's failing score lines are forced at once from its KV cache."""
        self._forced_ahead.clear()
        rows: list[tuple[GenerationRequest, list[int]]] = []  # (request, prompt ids) per sample
        owner: list[int] = []  # request index of each row
        samples: list[int] = []  # sample index of each row within its request
        for i, req in enumerate(requests):
            rows += [(req, self.encode_chat(req.messages))] * req.n
            owner += [i] * req.n
            samples += range(req.n)
        gens: list[Generation] = [Generation("")] * len(rows)
        for chunk in self._batches(rows):
            req0 = rows[chunk[0]][0]
            state: dict | None = {} if self.reuse_kv and any(rows[j][0].constraint for j in chunk) else None
            done = self._run([rows[j][1] for j in chunk], req0.temperature, req0.max_new_tokens, req0.seed + chunk[0],
                             state=state)
            for j, (text, n_new, hit) in zip(chunk, done, strict=True):
                gens[j] = Generation(text, "length" if hit else "stop", False, n_new)
            if state:
                self._force_from_cache([(r, rows[j][0], samples[j], gens[j].text) for r, j in enumerate(chunk)], state)
        out: list[list[Generation]] = [[] for _ in requests]
        for i, g in zip(owner, gens, strict=True):
            out[i].append(g)
        return out

    @torch.inference_mode()
    def _force_from_cache(self, batch: list[tuple[int, GenerationRequest, int, str]], state: dict) -> None:
        """Force, in one `generate`, the score line of every row of a finished batch that needs it, from the batch's KV cache.

        `batch` holds (row in the batch, request, sample index, free text). A row's continuation
        (prompt + free text up to its score line + the forced prefix) shares a prefix with what
        the batch already read. The cache keeps its columns: a row attends to its own shared
        prefix there and to nothing else (its left padding and the cached tokens it does not
        share are masked), and its unshared tokens follow, left-padded to the longest. So only
        those few tokens are read again. The results wait in `_forced_ahead` for
        `generate_forced`, which `Backend.generate` calls for the same rows.
        """
        cache = state["cache"]
        layers = getattr(cache, "layers", None)
        if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            return  # sliding-window or other caches: generate_forced re-reads instead
        todo = [(r, req, sample, text) for r, req, sample, text in batch
                if req.constraint is not None and not constraint_satisfied(text, req.constraint)]
        if not todo:
            return
        if self._score_tokens is None:
            self._score_tokens = ScoreLineProcessor.score_tokens(self.tokenizer)
        cached_len = cache.get_seq_length()
        spans, tails = [], []  # per row: (left padding, shared tokens), then its tokens after the shared prefix
        for r, req, _, text in todo:
            target = self.encode_chat(req.messages, forced_prompt_tail(text, req.constraint)[1])
            pad = int((state["mask"][r] == 0).sum())
            common = min(common_prefix_len(state["sequences"][r, pad:cached_len].tolist(), target), len(target) - 1)
            spans.append((pad, common))
            tails.append(target[common:])
        kept = max(pad + common for pad, common in spans)  # cache columns still needed
        width = max(len(t) for t in tails)
        picked = [r for r, *_ in todo]
        cache.batch_select_indices(torch.tensor(picked, device=self.device))
        if kept < cached_len:
            cache.crop(kept - cached_len)  # a negative count removes that many tokens (transformers 4.x and 5.x)
        pad_id = self.tokenizer.pad_token_id
        ids = torch.cat([state["sequences"][picked, :kept],
                         torch.tensor([[pad_id] * (width - len(t)) + t for t in tails], device=self.device)], dim=1)
        mask = torch.tensor([[int(pad <= col < pad + common) for col in range(kept)] + [0] * (width - len(t)) + [1] * len(t)
                             for (pad, common), t in zip(spans, tails, strict=True)], device=self.device)
        constraints = [req.constraint for _, req, _, _ in todo]
        _, req0, sample0, _ = todo[0]
        kwargs = self._sampling(req0.temperature, max(score_budget(c) for c in constraints), req0.seed + 7919 + sample0)
        processor = ScoreLineProcessor(self.tokenizer, constraints, kept + width, self._score_tokens)
        out = self.model.generate(input_ids=ids, attention_mask=mask, logits_processor=LogitsProcessorList([processor]),
                                  **{self._cache_kwarg: cache}, **kwargs)
        for (_, req, sample, _), row, c in zip(todo, out[:, kept + width :], constraints, strict=True):
            tail, n_new, _ = self._decoded(row, score_budget(c))
            self._forced_ahead[(id(req), sample)] = (tail, n_new)

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """Tails forced from the KV cache during `generate_free`, else re-read prompt + free text + prefix."""
        out: list[tuple[str, int] | None] = [self._forced_ahead.pop((id(c.request), c.sample), None) for c in continuations]
        self._forced_ahead.clear()
        rows = [(c.request, self.encode_chat(c.request.messages, c.prefill)) for c in continuations]
        for chunk in self._batches(rows, [j for j, o in enumerate(out) if o is None]):
            cons = [rows[j][0].constraint for j in chunk]
            req0, c0 = rows[chunk[0]][0], continuations[chunk[0]]
            budget = max(score_budget(c) for c in cons)  # type: ignore[arg-type]
            done = self._run([rows[j][1] for j in chunk], req0.temperature, budget, req0.seed + 7919 + c0.sample, cons)  # type: ignore[arg-type]
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
