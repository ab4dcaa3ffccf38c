"""Retrieval metrics as small pure functions that validate their inputs.

Ranks are 1-based: rank 1 means the true partner was retrieved first. Ties
are counted pessimistically: a candidate scoring *equal* to the true partner
ranks before it.
"""

from __future__ import annotations

import numpy as np

RECALL_KS = (1, 5, 10, 25)


def _check_ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError(f"ranks must be a non-empty 1-d array, got shape {ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer) or ranks.min() < 1:
        raise ValueError("ranks must be integers >= 1")
    return ranks


def ranks_from_similarity(similarity: np.ndarray) -> np.ndarray:
    """Rank of the true partner of every query (pessimistic about ties).

    Parameters
    ----------
    similarity : np.ndarray, shape (n_queries, n_candidates)
        Higher is more similar; query ``i``'s true partner is candidate ``i``.

    Returns
    -------
    np.ndarray, shape (n_queries,), int64
        ``1 + #{j != i : s[i, j] >= s[i, i]}``.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] > sim.shape[1] or sim.shape[0] == 0:
        raise ValueError(f"similarity must be (n_queries, n_candidates) with n_queries <= "
                         f"n_candidates, got shape {sim.shape}")
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity holds NaN or infinite values")
    n = sim.shape[0]
    true = sim[np.arange(n), np.arange(n)]
    return (sim >= true[:, None]).sum(axis=1).astype(np.int64)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Percentage of queries whose true partner ranks within the top ``k``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float(100.0 * np.mean(_check_ranks(ranks) <= k))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1 / rank (the original stored it as ``map``)."""
    return float(np.mean(1.0 / _check_ranks(ranks)))


def median_rank(ranks: np.ndarray) -> float:
    """Median rank."""
    return float(np.median(_check_ranks(ranks)))


def mean_rank(ranks: np.ndarray) -> float:
    """Mean rank."""
    return float(np.mean(_check_ranks(ranks)))


def retrieval_metrics(ranks: np.ndarray, ks: tuple[int, ...] = RECALL_KS) -> dict:
    """All metrics of a rank list: R@k (%), MRR, median and mean rank, query count."""
    ranks = _check_ranks(ranks)
    out = {f"R@{k}": recall_at_k(ranks, k) for k in ks}
    out.update({"MRR": mean_reciprocal_rank(ranks), "MedR": median_rank(ranks),
                "MeanR": mean_rank(ranks), "n": int(len(ranks))})
    return out
