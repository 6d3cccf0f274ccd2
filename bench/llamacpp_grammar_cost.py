"""What llama.cpp's whole-judgment grammar costs: tokens/s with and without it, one prompt.

    PYTHONPATH=src python bench/llamacpp_grammar_cost.py
"""

import json
import time

from spct.backends import EngineConfig, GenerationRequest, ScoreConstraint, load_backend

b = load_backend(EngineConfig("smollm2-135m", "llamacpp"), n_ctx=2048)
msgs = [{"role": "user", "content": "Judge: is 'Paris' a good answer to 'capital of France?' Answer with principles, analysis and scores."}]
req = GenerationRequest(msgs, max_new_tokens=24)
prompt = b.render(msgs)
b._complete(prompt, req, 4, 0)
out = {}
for name, g in (("free", None), ("judgment_grammar", b._grammar("judgment", ScoreConstraint(1)))):
    t = time.perf_counter()
    text, _, n = b._complete(prompt, req, 24, 0, g)
    dt = time.perf_counter() - t
    out[name + "_tok_s"] = round(n / dt, 2)
    out[name + "_text"] = text[:80]
print(json.dumps(out))
