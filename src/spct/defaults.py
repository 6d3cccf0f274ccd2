"""Generation defaults that are not about the score line: token budgets by use and temperatures.

Kept apart from `spct.score_line` (the judgment's score format) because these are sampling
choices, set once here for every command, engine and client. Nothing here imports spct.
"""

from __future__ import annotations

# Token budgets of one judgment. Judging offline (judge, eval, rft, meta-data) takes the full
# budget; serving a reward in a training loop (serve, the RL reward client) and the many-sample
# scaling runs take less for latency; the demo judges 8 pairs with two models on CPU, so it keeps
# judgments short enough to finish in minutes; the probes judge shorter still.
MAX_NEW_TOKENS = 512
SERVE_MAX_NEW_TOKENS = 256
DEMO_MAX_NEW_TOKENS = 160
PROBE_MAX_NEW_TOKENS = 48
# Temperatures. Sampled judgments (k > 1) use the paper's 0.5; one judgment is greedy (0, see
# `policies.is_greedy`). An OpenAI-style chat request that names none samples at 1.0, that API's
# own default; RL rollouts sample at 1.0, TRL's GRPOConfig default.
SAMPLE_TEMPERATURE = 0.5
GREEDY_TEMPERATURE = 0.0
CHAT_API_TEMPERATURE = 1.0
ROLLOUT_TEMPERATURE = 1.0
