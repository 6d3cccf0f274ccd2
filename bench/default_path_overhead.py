"""The default judging path's own cost (fake engine, so only spct's Python runs), for comparing two checkouts.

    python bench/default_path_overhead.py            # this checkout
    PYTHONPATH=/other/checkout/src python bench/default_path_overhead.py

Judges N two-response examples with k = 4 under the default JudgeConfig (policy voting, readout
sampled) five times and prints the best wall time, so two versions of the code can be compared
on the same machine in one sitting.
"""

from __future__ import annotations

import json
import os
import sys
import time

import spct
from spct.backends.fake import FakeBackend
from spct.data import Example
from spct.judge import GenerativeRewardModel, JudgeConfig

N = int(sys.argv[1]) if len(sys.argv) > 1 else 400
examples = [Example(f"e{i}", f"question {i}?", [f"answer {'x' * (i % 37)}", f"other {'y' * (i % 23)}"], best=[i % 2])
            for i in range(N)]
grm = GenerativeRewardModel(FakeBackend(), JudgeConfig(k=4))
times = []
for _ in range(5):
    t0 = time.perf_counter()
    grm.judge(examples, batch_size=64)
    times.append(time.perf_counter() - t0)
print(json.dumps({"spct": os.path.dirname(spct.__file__), "examples": N, "k": 4, "best_s": round(min(times), 4),
                  "load_avg": os.getloadavg()[0]}))
