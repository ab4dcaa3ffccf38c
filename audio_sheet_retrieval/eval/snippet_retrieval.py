"""Snippet retrieval: rank the true partner of every test pair among all test pairs.

The original's protocol (``run_eval.py``): take ``n_test`` test pairs evenly
spaced over the ordered test pool, embed both views deterministically, and
rank all candidates of the other view by cosine similarity.

* ``S2A`` (the default): sheet snippets are the queries, audio excerpts the
  candidates. ``A2S`` (``--V2_to_V1``): the reverse.
* Ranks are 1-based and pessimistic about ties (a candidate scoring *equal*
  to the true partner ranks before it), as in
  :func:`~audio_sheet_retrieval.eval.metrics.ranks_from_similarity`.
* Fixed quirks of the original: the evenly spaced indices are made unique
  (``linspace(...).astype(int)`` repeats indices when ``n_test`` exceeds the
  pool), and similarities are computed in float64 so that a rank never
  depends on the summation order of the matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.eval.metrics import retrieval_metrics

DIRECTIONS = ("S2A", "A2S")
"""S2A: sheet queries retrieve audio (the original's default); A2S: audio retrieves sheet."""


def with_test_conditions(config: dict, test_synth: str | None = None,
                    test_tempo: float | None = None) -> dict:
    """A copy of ``config`` with TEST_SYNTH / TEST_TEMPO overridden (None keeps the config's).

    Parameters
    ----------
    config : dict
        Validated experiment configuration.
    test_synth : str, optional
        Synth of the test performances (``--test_synth``).
    test_tempo : float, optional
        Tempo ratio of the test performances (``--test_tempo``; 1.1 = 10 % faster).

    Returns
    -------
    dict
    """
    out = dict(config)
    if test_synth is not None:
        out["TEST_SYNTH"] = test_synth
    if test_tempo is not None:
        out["TEST_TEMPO"] = float(test_tempo)
    return out



def evenly_spaced(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (fewer when ``n > n_total``).

    Parameters
    ----------
    n_total : int
        Size of the ordered pool.
    n : int
        Number of indices wanted (>= 1).

    Returns
    -------
    np.ndarray, shape (min(n, n_total),), int64
        Unique, increasing; includes 0 and ``n_total - 1`` when ``n >= 2``.
    """
    if n_total < 1 or n < 1:
        raise ValueError(f"need n_total >= 1 and n >= 1, got {n_total}, {n}")
    return np.unique(np.round(np.linspace(0, n_total - 1, n)).astype(np.int64))


def embed_pool_pairs(model, pool: SnippetPool, indices: np.ndarray, batch_size: int = 256,
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Codes of both views of the pool's entities ``indices`` (no augmentation).

    Parameters
    ----------
    model : TwoBranchModel
    pool : SnippetPool
    indices : np.ndarray, shape (n,), n >= 1
        Entity indices.
    batch_size : int
        Pairs cut and embedded at a time.
    progress : bool
        Show a progress bar.

    Returns
    -------
    z_sheet, z_audio : np.ndarray, shape (n, latent), float32
        Unit-norm codes in eval mode (deterministic).
    """
    sheets_out, audio_out = [], []
    starts = range(0, len(indices), batch_size)
    for lo in tqdm(starts, desc="embedding test pairs", unit="batch", disable=not progress,
                   leave=False):
        sheets, specs = pool.pairs(indices[lo:lo + batch_size], augment=False)
        sheets_out.append(model.embed_sheet(sheets, batch_size=batch_size).cpu().numpy())
        audio_out.append(model.embed_spec(specs, batch_size=batch_size).cpu().numpy())
    return np.concatenate(sheets_out), np.concatenate(audio_out)


BLOCK_ELEMENTS = 1 << 20
"""Similarities per block of queries (8 MiB in float64): blocks that stay in cache are faster."""


def partner_ranks(queries: np.ndarray | torch.Tensor, candidates: np.ndarray | torch.Tensor,
                  block_size: int | None = None, dtype: torch.dtype = torch.float64
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each query's true partner among all candidates, by dot product.

    Query ``i``'s partner is candidate ``i``. Works in blocks of queries so
    that memory stays at ``block_size x n_candidates``; the partner's score is
    read from the same product as the others, so ties are exact. Counting the
    better candidates is O(n) per query where sorting would be O(n log n).

    Parameters
    ----------
    queries : array, shape (n_queries, d)
        Unit-norm codes (dot product = cosine similarity).
    candidates : array, shape (n_candidates, d), n_candidates >= n_queries
    block_size : int, optional
        Queries per matrix product (default: about :data:`BLOCK_ELEMENTS`
        similarities per block, 8 to 1024 queries).
    dtype : torch.dtype
        Precision of the products (float64: exact ranks; float32: faster).

    Returns
    -------
    ranks : np.ndarray, shape (n_queries,), int64
        ``1 + #{j != i : s[i, j] >= s[i, i]}``.
    partner_similarity : np.ndarray, shape (n_queries,), float64
        ``s[i, i]``.
    """
    q = torch.as_tensor(queries).to(dtype)
    c = torch.as_tensor(candidates).to(dtype=dtype, device=q.device)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1] or len(q) > len(c) or len(q) == 0:
        raise ValueError(f"need queries (n, d) and candidates (m >= n, d), got {tuple(q.shape)} "
                         f"and {tuple(c.shape)}")
    if not (torch.isfinite(q).all() and torch.isfinite(c).all()):
        raise ValueError("codes hold NaN or infinite values")
    if block_size is None:
        block_size = int(np.clip(BLOCK_ELEMENTS // len(c), 8, 1024))
    ranks = torch.empty(len(q), dtype=torch.int64, device=q.device)
    partner = torch.empty(len(q), dtype=dtype, device=q.device)
    for lo in range(0, len(q), block_size):
        hi = min(lo + block_size, len(q))
        sim = q[lo:hi] @ c.T
        rows = torch.arange(hi - lo, device=q.device)
        true = sim[rows, rows + lo]
        ranks[lo:hi] = (sim >= true[:, None]).sum(dim=1)
        partner[lo:hi] = true
    return ranks.cpu().numpy(), partner.double().cpu().numpy()


@dataclass
class SnippetRetrieval:
    """Result of one snippet-retrieval run.

    Attributes
    ----------
    direction : {'S2A', 'A2S'}
    indices : np.ndarray, shape (n,)
        Test-pool entity of each query.
    pieces : list of str
        Piece of each query.
    ranks : np.ndarray, shape (n,), int64
        1-based rank of each query's true partner.
    metrics : dict
        R@1/5/10/25 (%), MRR, MedR, MeanR, n, and ``mean_dist``: mean cosine
        distance ``1 - cos`` of the true pairs.
    """

    direction: str
    indices: np.ndarray
    pieces: list[str]
    ranks: np.ndarray
    metrics: dict = field(default_factory=dict)


def rank_directions(z_sheet: np.ndarray, z_audio: np.ndarray, direction: str = "S2A",
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Partner ranks and similarities of paired codes in one direction.

    Parameters
    ----------
    z_sheet, z_audio : np.ndarray, shape (n, d)
        Paired unit-norm codes: row ``i`` of both is one pair.
    direction : {'S2A', 'A2S'}
        S2A: sheet queries, audio candidates; A2S: the reverse.

    Returns
    -------
    ranks, partner_similarity : np.ndarray, shape (n,)
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    queries, candidates = (z_sheet, z_audio) if direction == "S2A" else (z_audio, z_sheet)
    return partner_ranks(queries, candidates)


def snippet_retrieval(model, pool: SnippetPool, n_test: int = 2000, direction: str = "S2A",
                      batch_size: int = 256, progress: bool = True) -> SnippetRetrieval:
    """The original's snippet-retrieval evaluation on a test pool.

    Parameters
    ----------
    model : TwoBranchModel
        With its trained (or refined) parameters loaded.
    pool : SnippetPool
        The ordered test pool (TEST_SYNTH at TEST_TEMPO).
    n_test : int
        Number of evenly spaced test pairs (2,000 in TISMIR, 10,000 in ISMIR 2019).
    direction : {'S2A', 'A2S'}
    batch_size : int
        Pairs embedded at a time.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SnippetRetrieval

    Raises
    ------
    AsrError
        For a test pool of fewer than 2 pairs (every rank would be 1).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if n_test < 2:
        raise ValueError(f"n_test must be >= 2 (a ranking needs candidates), got {n_test}")
    pool.require(2, "test", "a ranking")
    indices = evenly_spaced(len(pool), n_test)
    z_sheet, z_audio = embed_pool_pairs(model, pool, indices, batch_size, progress)
    ranks, partner = rank_directions(z_sheet, z_audio, direction)
    metrics = retrieval_metrics(ranks)
    metrics["mean_dist"] = float(np.mean(1.0 - partner))
    names = pool.piece_names
    pieces = [names[i] for i in pool.entity_piece[indices]]
    return SnippetRetrieval(direction, indices, pieces, ranks, metrics)


def dump_snippet_results(result: SnippetRetrieval, folder: str | Path, stem: str,
                         meta: dict) -> list[Path]:
    """Write the original's YAML plus the ranks CSV and a rank histogram PNG, atomically.

    Parameters
    ----------
    result : SnippetRetrieval
    folder : path
        Beside the parameters (``EXP_ROOT/<model>[_est_UV]``).
    stem : str
        ``eval_<tag>_<S2A|A2S>_<tempo x 1000>`` (see :func:`~.summary.eval_stem`).
    meta : dict
        Extra plain fields (model, config, split, test synth and tempo, estimate_UV).

    Returns
    -------
    list of Path
        ``<stem>.yaml``, ``<stem>_ranks.csv``, ``<stem>_ranks.png``.
    """
    from audio_sheet_retrieval.atomic import write_yaml_atomic
    from audio_sheet_retrieval.eval.summary import plot_rank_histogram, write_ranks_csv

    m = result.metrics
    folder = Path(folder)
    data = {"map": m["MRR"], "med_rank": m["MedR"],
            "recall_at_k": {str(k): m[f"R@{k}"] for k in (1, 5, 10, 25)},
            "mean_rank": m["MeanR"], "mean_dist": m["mean_dist"], "n_test": m["n"],
            "direction": result.direction, **meta}
    title = (f"{stem}: R@1 {m['R@1']:.1f} %, MRR {m['MRR']:.3f}, MedR {m['MedR']:g} "
             f"(n={m['n']})")
    return [write_yaml_atomic(data, folder / f"{stem}.yaml"),
            write_ranks_csv(folder / f"{stem}_ranks.csv", result.pieces, result.ranks),
            plot_rank_histogram(result.ranks, folder / f"{stem}_ranks.png", title)]
