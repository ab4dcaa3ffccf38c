"""Large-batch CCA refinement: refit the CCA projection on many training pairs.

The network's features before the projection are computed (deterministically,
in eval mode) for ``n_train`` augmented training pairs; CCA is then fitted in
closed form in float64 with the CCA layer's own fit (``T = S11^-1/2 S12 S22^-1/2
= P diag(rho) Q^T``, ``U = S11^-1/2 P``, ``V = S22^-1/2 Q``, ridges 1e-3); the
stored means, U, V and canonical correlations are replaced (the correlations
are saved with the layer, as its own fit keeps them).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.nn.cca import cca_statistics


def fit_cca(h1: np.ndarray, h2: np.ndarray, r1: float = 1e-3, r2: float = 1e-3):
    """Closed-form regularised CCA in float64 (the CCA layer's own fit, on many pairs).

    Parameters
    ----------
    h1, h2 : np.ndarray, shape (n, d)
        Paired features (sheet, audio).
    r1, r2 : float
        Ridges added to the covariances.

    Returns
    -------
    mean1, mean2 : np.ndarray, shape (d,)
    U, V : np.ndarray, shape (d, d)
        Projections, columns in order of decreasing canonical correlation.
    rho : np.ndarray, shape (d,)
        Canonical correlations.
    """
    h1, h2 = np.asarray(h1, np.float64), np.asarray(h2, np.float64)
    if h1.shape != h2.shape or h1.ndim != 2 or h1.shape[0] <= h1.shape[1]:
        raise AsrError(f"CCA needs more pairs than dimensions, got {h1.shape} and {h2.shape}")
    if not (np.all(np.isfinite(h1)) and np.all(np.isfinite(h2))):
        raise AsrError("network features hold NaN or infinite values; the parameters are broken")
    with torch.no_grad():
        fit = cca_statistics(torch.from_numpy(h1), torch.from_numpy(h2), r1, r2)
    return tuple(t.numpy() for t in (fit.mean1, fit.mean2, fit.U, fit.V, fit.correlations))


def pre_projection_features(model, pool: SnippetPool, n_pairs: int, batch_size: int = 500,
                            seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Features before the projection of ``n_pairs`` augmented pool pairs (eval mode)."""
    rng = np.random.default_rng(seed)
    reps = -(-n_pairs // len(pool))
    order = np.concatenate([rng.permutation(len(pool)) for _ in range(reps)])[:n_pairs]
    device = model.device
    feats1, feats2 = [], []
    model.eval()
    with torch.no_grad():
        for lo in tqdm(range(0, n_pairs, batch_size), desc="embedding training pairs", unit="batch",
                       disable=not progress, leave=False):
            sheets, specs = pool.pairs(order[lo:lo + batch_size], augment=True, rng=rng)
            feats1.append(model.encode_sheet(model.prepare_sheet(sheets).to(device)).cpu().numpy())
            feats2.append(model.encode_spec(model.prepare_spec(specs).to(device)).cpu().numpy())
    return np.concatenate(feats1), np.concatenate(feats2)


def refine_cca(model, pool: SnippetPool, n_train: int = 25_000, seed: int = 0,
               progress: bool = True) -> np.ndarray:
    """Refit the model's CCA projection on ``n_train`` training pairs, in place.

    The pool must hold more distinct pairs than the code has dimensions (a
    fit on repeats of a few pairs is degenerate).

    Returns
    -------
    np.ndarray
        The canonical correlations of the new fit.
    """
    if model.spec.projection != "cca":
        raise AsrError(f"refine_cca needs a CCA model; this one uses a {model.spec.projection} "
                       "projection")
    pool.require(model.spec.latent + 1, "train", f"a CCA fit in {model.spec.latent} dimensions")
    was_training = model.training
    h1, h2 = pre_projection_features(model, pool, n_train, seed=seed, progress=progress)
    model.train(was_training)
    m1, m2, u, v, rho = fit_cca(h1, h2, model.spec.r1, model.spec.r2)
    like = model.projection.U
    model.projection.set_statistics(*(torch.as_tensor(a, dtype=like.dtype, device=like.device)
                                      for a in (m1, m2, u, v, rho)))
    return rho
