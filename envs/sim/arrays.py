"""Small array helpers for the hot path."""

from __future__ import annotations

import numpy as np


def rank_within(groups: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """0-based rank of each element inside its group, by ascending ``order_key``."""
    if groups.size == 0:
        return groups.copy()
    order = np.lexsort((order_key, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank_sorted = np.arange(g.size) - np.repeat(starts, np.diff(np.r_[starts, g.size]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    return rank
