"""llama.cpp through llama-cpp-python: GGUF files (the embedded SmolLM2 included) fast on CPU.

Install with `pip install 'spct[llamacpp]'` (it compiles llama.cpp, a few minutes). Samples
run one after another; llama.cpp keeps the KV cache of the longest prefix shared with the
previous prompt, so the k samples of one example re-read only what differs (the shuffled
responses), and a forced score line re-reads nothing.

With a `ScoreConstraint` the engine uses llama.cpp grammars (GBNF). By default
(`grammar="judgment"`) the first phase already follows a grammar of the whole judgment: a
`Principles:` list, an `Analysis:` and the score line, with the lines' words left free. A
sample that runs out of tokens before its score line is cut there and continued from
`Scores: \\boxed{` under a grammar admitting only the score list. `grammar="score"` leaves the
first phase free (as the transformers engine does; use it with the no-principles prompt).
"""

from __future__ import annotations

from pathlib import Path

from ..score_line import ScoreConstraint, judgment_gbnf, score_budget, score_tail_gbnf
from .base import (
    Backend,
    BackendError,
    Continuation,
    Generation,
    GenerationRequest,
    neutralise,
    neutralise_messages,
)
from .models import EMBEDDED, ModelNotFound, package_dir


def gguf_path(spec: str) -> Path:
    """Model spec -> a GGUF file: the embedded model's own file, or a path to one."""
    if spec in EMBEDDED:
        module, gguf, pip_name = EMBEDDED[spec]
        return package_dir(module, pip_name) / gguf
    p = Path(spec)
    if p.suffix != ".gguf" or not p.is_file():
        raise ModelNotFound(f"{spec}: the llamacpp engine needs a .gguf file (or 'smollm2-135m')")
    return p


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(self, model: str = "smollm2-135m", *, n_ctx: int = 8192, n_threads: int | None = None,
                 n_batch: int = 512, grammar: str = "judgment"):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:
            raise BackendError("the llamacpp engine needs llama-cpp-python: pip install 'spct[llamacpp]'") from e
        if grammar not in ("judgment", "score"):
            raise ValueError("grammar must be 'judgment' or 'score'")
        self.path = gguf_path(model)
        self.llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, verbose=False)
        self.context_length = self.llm.n_ctx()
        self.grammar = grammar
        template = self.llm.metadata.get("tokenizer.chat_template")
        eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", "ignore")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", "ignore")
        self._format = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos) if template else None
        self._grammars: dict[tuple[str, ScoreConstraint], object] = {}

    # -- tokens ---------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def count_tokens(self, text: str) -> int:
        return len(self._ids(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        ids = self._ids(text)
        return text if len(ids) <= max_tokens else self.llm.detokenize(ids[:max_tokens]).decode("utf-8", "ignore")

    def render(self, messages: list[dict]) -> str:
        if self._format is not None:
            return self._format(messages=messages).prompt
        return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\n\nAssistant: "

    # -- generation -----------------------------------------------------------------------
    def _grammar(self, kind: str, c: ScoreConstraint):
        from llama_cpp import LlamaGrammar

        key = (kind, c)
        if key not in self._grammars:
            text = judgment_gbnf(c) if kind == "judgment" else score_tail_gbnf(c)
            self._grammars[key] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[key]

    def _complete(self, prompt: str, req: GenerationRequest, max_tokens: int, seed: int, grammar=None) -> tuple[str, str, int]:
        sampling = {"temperature": req.temperature, "top_p": 1.0, "top_k": 0, "min_p": 0.0} if req.temperature > 0 else {"temperature": 0.0}
        out = self.llm.create_completion(prompt, max_tokens=max_tokens, seed=seed, repeat_penalty=1.0, grammar=grammar, **sampling)
        choice = out["choices"][0]
        return choice["text"], choice.get("finish_reason") or "stop", int(out["usage"]["completion_tokens"])

    def generate(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        # One request at a time: llama.cpp reuses the KV cache of the prefix shared with the previous
        # prompt, so a request's forced score lines re-read only their own free text, never the prompt.
        return [super(LlamaCppBackend, self).generate([r])[0] for r in requests]

    def generate_free(self, requests: list[GenerationRequest]) -> list[list[Generation]]:
        out: list[list[Generation]] = []
        for req in requests:
            # llama.cpp reads special tokens in the prompt text: break them up in judged text.
            prompt = self.render(neutralise_messages(req.messages))
            first = self._grammar("judgment", req.constraint) if req.constraint and self.grammar == "judgment" else None
            gens = []
            for s in range(req.n):
                text, finish, n_new = self._complete(prompt, req, req.max_new_tokens, req.seed + s, first)
                # Under the judgment grammar the score line is never the model's own choice.
                gens.append(Generation(text, "length" if finish == "length" else "stop", first is not None, n_new))
            out.append(gens)
        return out

    def generate_forced(self, continuations: list[Continuation]) -> list[tuple[str, int]]:
        """llama.cpp keeps the KV cache of the prefix shared with the previous prompt: the free text is not re-read."""
        out = []
        for c in continuations:
            req = c.request
            prompt = self.render(neutralise_messages(req.messages)) + neutralise(c.prefill)
            tail, _, k = self._complete(prompt, req, score_budget(req.constraint),  # type: ignore[arg-type]
                                        req.seed + 7919 + c.sample, self._grammar("score", req.constraint))  # type: ignore[arg-type]
            out.append((tail, k))
        return out
