"""Confidence intervals: the one bootstrap every figure spct reports uses (eval metrics, scaling curves).

A plain statistic with no judge in it, so any room may use it: scipy's percentile bootstrap,
seeded, with one resample count everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

N_BOOTSTRAP = 2000  # resamples of every interval spct reports


def bootstrap_ci(samples: Sequence[Sequence[float]], statistic: Callable[..., Any], *, level: float = 0.95,
                 seed: int = 0, n_resamples: int = N_BOOTSTRAP) -> np.ndarray:
    """Percentile bootstrap interval(s) of `statistic`, each sample resampled on its own (scipy's bootstrap).

    `statistic(*samples, axis=-1)` is vectorised and may return several values: the answer is
    one (low, high) row per value. A one-item sample goes in twice: resampling it gives the
    same value either way, and scipy asks for two.
    """
    data = tuple(np.repeat(np.asarray(s, dtype=float), 2 if len(s) == 1 else 1) for s in samples)
    ci = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=level, method="percentile",
                         rng=np.random.default_rng(seed), vectorized=True, axis=-1).confidence_interval
    return np.stack([ci.low, ci.high], axis=-1)
