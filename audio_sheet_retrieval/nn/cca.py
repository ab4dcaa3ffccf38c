"""The differentiable CCA projection layer (Dorfer et al.'s CCA layer).

In training mode the layer fits CCA on the batch and projects both views
onto their canonical directions; gradients flow through the fit. The fitted
means and projection matrices of the last training batch are kept as buffers
and used in eval mode, where each view can be projected alone.

Differences from the original (Theano) layer, all deliberate:

* One SVD of ``T = Σ11^{-½} Σ12 Σ22^{-½}`` replaces the two eigendecompositions
  of ``TTᵀ + r_T I`` and ``TᵀT + r_T I``. The SVD pairs left and right
  directions consistently even when correlations coincide (two separate
  eigendecompositions may rotate a repeated eigenspace differently), so the
  ``r_T`` shift is not needed, and ``diag(Uᵀ Σ12 V) = s >= 0`` holds by
  construction: the original's sign fix ``U <- U·sign(diag(Uᵀ Σ12 V))`` is
  a no-op here (and it zeroed a column whenever a correlation was 0).
* Gradients are safe (see :func:`inv_sqrtm` and :func:`svd_square`): finite for
  repeated canonical correlations and for (near-)singular covariances.
* Pairs get a deterministic sign: the largest-magnitude entry of each column
  of ``U`` is positive (flipping a pair together changes no inner product).
* The statistics are fitted in float64 (except on devices without it), then
  the outputs are cast back to the input dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

R_DEFAULT = 1e-3
"""Default ridge ``r1 = r2`` added to the view covariances."""


# ---------------------------------------------------------------- safe linear algebra

def _safe_reciprocal(x: Tensor, eps: float) -> Tensor:
    """``1/x`` for ``|x| >> eps``, going smoothly to 0 at ``x = 0``; bounded by ``1/(2 eps)``."""
    return x / (x * x + eps * eps)


def default_gap_eps(dtype: torch.dtype) -> float:
    """Gap regulariser of :func:`svd_square`: the square root of machine epsilon.

    About ``3.5e-4`` in float32 and ``1.5e-8`` in float64: well below typical
    gaps between canonical correlations, well above rounding noise.
    """
    return float(torch.finfo(dtype).eps) ** 0.5


class _InvSqrtm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: Tensor) -> Tensor:
        lam, vec = torch.linalg.eigh(s)
        # S is a ridge-regularised covariance (eigenvalues >= r > 0); the
        # relative floor only guards a singular S when r = 0.
        info = torch.finfo(s.dtype)
        lam = lam.clamp_min(lam.abs().max().clamp_min(info.tiny) * info.eps)
        ctx.save_for_backward(lam, vec)
        return (vec * lam.rsqrt()) @ vec.T

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        lam, vec = ctx.saved_tensors
        grad = 0.5 * (grad + grad.T)
        root = lam.sqrt()
        # Daleckii-Krein: divided differences of f(x) = x^{-1/2} have the
        # gap-free form -1 / (√a √b (√a + √b)), which is also f'(a) at a == b.
        kernel = -1.0 / (root[:, None] * root[None, :] * (root[:, None] + root[None, :]))
        return vec @ (kernel * (vec.T @ grad @ vec)) @ vec.T


def inv_sqrtm(s: Tensor) -> Tensor:
    """Inverse square root of a symmetric positive definite matrix.

    Parameters
    ----------
    s : Tensor, shape (d, d)
        Symmetric positive definite matrix (a covariance plus ``r·I``).

    Returns
    -------
    Tensor, shape (d, d)
        The symmetric ``S^{-1/2}``. Its gradient is exact and finite for any
        eigenvalue multiplicity: no division by eigenvalue gaps.
    """
    return _InvSqrtm.apply(s)


class _SvdSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        p, s, qh = torch.linalg.svd(t)
        q = qh.T.contiguous()
        ctx.eps = eps
        ctx.save_for_backward(p, s, q)
        return p, s, q

    @staticmethod
    def backward(ctx, g_p: Tensor | None, g_s: Tensor | None,
                 g_q: Tensor | None) -> tuple[Tensor, None]:
        p, s, q = ctx.saved_tensors
        a = torch.zeros_like(p) if g_p is None else p.T @ g_p
        b = torch.zeros_like(q) if g_q is None else q.T @ g_q
        a, b = a - a.T, b - b.T
        # With M = Pᵀ dT Q: (ωP + ωQ)_ij = (M + Mᵀ)_ij / (s_j - s_i) and
        # (ωP - ωQ)_ij = (M - Mᵀ)_ij / (s_j + s_i). The gap term moves both
        # singular vectors together; for a loss that depends on the pairs
        # only through inner products its numerator (a + b) vanishes where
        # the gap does, so the regularised reciprocal loses nothing there.
        gap = _safe_reciprocal(s[None, :] - s[:, None], ctx.eps)
        tot = _safe_reciprocal(s[None, :] + s[:, None], ctx.eps)
        off = 1.0 - torch.eye(s.shape[0], dtype=s.dtype, device=s.device)
        inner = 0.5 * off * (gap * (a + b) + tot * (a - b))
        if g_s is not None:
            inner = inner + torch.diag(g_s)
        return p @ inner @ q.T, None


def svd_square(t: Tensor, eps: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """SVD ``T = P diag(s) Qᵀ`` of a square matrix, with bounded gradients.

    Parameters
    ----------
    t : Tensor, shape (d, d)
        Square matrix.
    eps : float, optional
        Regulariser of the reciprocal singular-value gaps in the backward
        pass; :func:`default_gap_eps` of the dtype by default.

    Returns
    -------
    p : Tensor, shape (d, d)
        Left singular vectors (columns).
    s : Tensor, shape (d,)
        Singular values, descending, non-negative.
    q : Tensor, shape (d, d)
        Right singular vectors (columns: ``Q``, not ``Qᵀ``).
    """
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"svd_square expects a square matrix, got shape {tuple(t.shape)}")
    return _SvdSquare.apply(t, default_gap_eps(t.dtype) if eps is None else eps)


# ---------------------------------------------------------------- CCA fit

class CCAStatistics(NamedTuple):
    """A CCA fit: ``z1 = (h1 - mean1) @ U`` and ``z2 = (h2 - mean2) @ V``.

    Attributes
    ----------
    mean1, mean2 : Tensor, shape (d,)
        View means.
    U, V : Tensor, shape (d, d)
        Canonical directions (columns), in descending order of correlation.
    correlations : Tensor, shape (d,)
        Canonical correlations, descending, in [0, 1).
    """

    mean1: Tensor
    mean2: Tensor
    U: Tensor
    V: Tensor
    correlations: Tensor


def cca_statistics(h1: Tensor, h2: Tensor, r1: float = R_DEFAULT, r2: float = R_DEFAULT,
                   gap_eps: float | None = None) -> CCAStatistics:
    """Fit regularised CCA between two views; differentiable.

    ``Σ11 = H̄1ᵀH̄1/(m-1) + r1·I``, ``Σ22`` likewise, ``Σ12 = H̄1ᵀH̄2/(m-1)``;
    ``T = Σ11^{-½} Σ12 Σ22^{-½} = P diag(ρ) Qᵀ``; ``U = Σ11^{-½}P``,
    ``V = Σ22^{-½}Q``. Then ``UᵀΣ11U = VᵀΣ22V = I`` and ``UᵀΣ12V = diag(ρ)``.
    Used by :class:`CCAProjection` per batch and for the large-sample refit.

    Parameters
    ----------
    h1, h2 : Tensor, shape (m, d)
        Paired features of the two views (m >= 2 samples); the fit runs in
        their dtype.
    r1, r2 : float
        Ridge added to each view's covariance.
    gap_eps : float, optional
        See :func:`svd_square`.

    Returns
    -------
    CCAStatistics
    """
    if h1.ndim != 2 or h2.ndim != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(f"CCA needs paired (m, d) features, got {tuple(h1.shape)} "
                         f"and {tuple(h2.shape)}")
    if h1.shape[1] != h2.shape[1]:
        raise ValueError(f"CCA layer needs equal view dimensions, got {h1.shape[1]} "
                         f"and {h2.shape[1]}")
    m, d = h1.shape
    if m < 2:
        raise ValueError(f"CCA needs at least 2 samples per batch, got {m}")
    mean1, mean2 = h1.mean(0), h2.mean(0)
    c1, c2 = h1 - mean1, h2 - mean2
    return cca_from_moments(mean1, mean2, c1.T @ c1 / (m - 1), c2.T @ c2 / (m - 1),
                            c1.T @ c2 / (m - 1), r1, r2, gap_eps)


def cca_from_moments(mean1: Tensor, mean2: Tensor, c11: Tensor, c22: Tensor, c12: Tensor,
                     r1: float = R_DEFAULT, r2: float = R_DEFAULT,
                     gap_eps: float | None = None) -> CCAStatistics:
    """Regularised CCA from means and (co)variances; differentiable.

    Parameters
    ----------
    mean1, mean2 : Tensor, shape (d,)
    c11, c22, c12 : Tensor, shape (d, d)
        Covariances of each view and their cross-covariance (no ridge).
    r1, r2, gap_eps
        As in :func:`cca_statistics`.
    """
    d = c11.shape[0]
    eye = torch.eye(d, dtype=c11.dtype, device=c11.device)
    w1, w2 = inv_sqrtm(c11 + r1 * eye), inv_sqrtm(c22 + r2 * eye)
    p, rho, q = svd_square(w1 @ c12 @ w2, gap_eps)
    u, v = w1 @ p, w2 @ q
    with torch.no_grad():  # joint sign per pair: largest |entry| of each U column positive
        sign = torch.sign(u.gather(0, u.abs().argmax(0, keepdim=True))).squeeze(0)
        sign[sign == 0] = 1.0
    return CCAStatistics(mean1, mean2, u * sign, v * sign, rho)


def work_dtype(x: Tensor) -> torch.dtype:
    """float64 for the small CCA matrices, except on devices without it (MPS)."""
    return torch.float32 if x.device.type == "mps" else torch.float64


# ---------------------------------------------------------------- layers

class _Transient:
    """Holds the last batch's graph-attached correlations; copies and pickles empty.

    (``copy.deepcopy`` of a module would fail on a non-leaf tensor.)
    """

    def __init__(self) -> None:
        self.value: Tensor | None = None

    def __reduce__(self) -> tuple[type, tuple]:
        return _Transient, ()


class Projection(nn.Module):
    """Common interface of the joint projection layers.

    Holds ``mean1``, ``mean2`` (d,) and ``U``, ``V`` (d, d) and projects
    ``z1 = (h1 - mean1) @ U``, ``z2 = (h2 - mean2) @ V``. Subclasses define
    the training-mode :meth:`forward`; eval mode and the single-view
    :meth:`project1` / :meth:`project2` use the stored statistics.
    """

    mean1: Tensor
    mean2: Tensor
    U: Tensor
    V: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self._last = _Transient()

    def project1(self, h1: Tensor) -> Tensor:
        """Project view-1 features (B, d) with the stored statistics -> (B, d)."""
        return (h1 - self.mean1.to(h1.dtype)) @ self.U.to(h1.dtype)

    def project2(self, h2: Tensor) -> Tensor:
        """Project view-2 features (B, d) with the stored statistics -> (B, d)."""
        return (h2 - self.mean2.to(h2.dtype)) @ self.V.to(h2.dtype)

    @torch.no_grad()
    def set_statistics(self, mean1: Tensor, mean2: Tensor, U: Tensor, V: Tensor,
                       correlations: Tensor | None = None) -> None:
        """Overwrite the stored statistics (e.g. with a large-sample CCA refit).

        Parameters
        ----------
        mean1, mean2 : Tensor or array, shape (d,)
        U, V : Tensor or array, shape (d, d)
        correlations : Tensor or array, shape (d,), optional
            Stored for reporting only.
        """
        d = self.dim
        items = [("mean1", mean1, (d,)), ("mean2", mean2, (d,)), ("U", U, (d, d)),
                 ("V", V, (d, d))]
        if correlations is not None:
            items.append(("stored_correlations", correlations, (d,)))
        for name, value, shape in items:
            target = getattr(self, name)
            value = torch.as_tensor(value)
            if tuple(value.shape) != shape:
                raise ValueError(f"set_statistics: {name} must have shape {shape}, "
                                 f"got {tuple(value.shape)}")
            target.copy_(value.to(device=target.device, dtype=target.dtype))

    @property
    def correlations(self) -> Tensor:
        """Correlations of the projected views, (d,), descending for CCA.

        After a training-mode forward: that batch's values, attached to the
        graph (for a trace-norm loss); otherwise the stored ones.
        """
        if self.training and self._last.value is not None:
            return self._last.value
        return self.stored_correlations

    def trace_norm_loss(self) -> Tensor:
        """``-mean(correlations)``: the optional trace-norm objective (weight 0 by default)."""
        return -self.correlations.mean()

    def forward(self, h1: Tensor, h2: Tensor) -> tuple[Tensor, Tensor]:
        """Project both views, (B, d) each -> (B, d) each."""
        return self.project1(h1), self.project2(h2)


class CCAProjection(Projection):
    """Differentiable CCA layer: projects both views onto canonical directions.

    Training mode fits :func:`cca_statistics` on the batch (gradients flow
    through the fit). For inference it keeps running averages of the means
    and (co)variances over training batches (``momentum``, like batch norm)
    and stores the CCA fitted on them as ``mean1``, ``mean2``, ``U``, ``V``;
    eval mode uses the stored fit. The original stored the last batch's own
    fit (``momentum=1``): with 100 pairs in 32 dimensions that fit is so
    noisy that validation MRR during training is close to chance even when
    the features are good; ``refine_cca`` repairs it only after training.

    Parameters
    ----------
    dim : int
        Feature dimension of each view (32 in all models).
    r1, r2 : float
        Ridge added to the view covariances.
    gap_eps : float, optional
        Regulariser of reciprocal correlation gaps in the backward pass.
    momentum : float
        Weight of each new batch in the running moments (1: last batch only).

    Shapes
    ------
    forward(h1 (B, d), h2 (B, d)) -> (z1 (B, d), z2 (B, d)); B >= 2 in training.
    """

    RUNNING = ("run_mean1", "run_mean2", "run_c11", "run_c22", "run_c12", "num_batches")

    def __init__(self, dim: int, r1: float = R_DEFAULT, r2: float = R_DEFAULT,
                 gap_eps: float | None = None, momentum: float = 0.05) -> None:
        super().__init__(dim)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {momentum}")
        self.r1, self.r2, self.gap_eps, self.momentum = r1, r2, gap_eps, momentum
        self.register_buffer("mean1", torch.zeros(dim))
        self.register_buffer("mean2", torch.zeros(dim))
        self.register_buffer("U", torch.eye(dim))
        self.register_buffer("V", torch.eye(dim))
        self.register_buffer("stored_correlations", torch.zeros(dim))
        self._init_running(dim)

    def _init_running(self, dim: int) -> None:
        for name in ("run_mean1", "run_mean2"):
            self.register_buffer(name, torch.zeros(dim))
        for name in ("run_c11", "run_c22", "run_c12"):
            self.register_buffer(name, torch.zeros(dim, dim))
        self.register_buffer("num_batches", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the running moments existed: start them afresh
        for name in self.RUNNING:
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def _update_running(self, x1: Tensor, x2: Tensor, st: CCAStatistics) -> None:
        """Fold the batch's moments into the running ones and refit the stored CCA."""
        m = x1.shape[0]
        c1, c2 = x1 - st.mean1, x2 - st.mean2
        batch = {"run_mean1": st.mean1, "run_mean2": st.mean2, "run_c11": c1.T @ c1 / (m - 1),
                 "run_c22": c2.T @ c2 / (m - 1), "run_c12": c1.T @ c2 / (m - 1)}
        w = 1.0 if int(self.num_batches) == 0 else self.momentum
        for name, value in batch.items():
            buf = getattr(self, name)
            buf.copy_(((1 - w) * buf.to(value.dtype) + w * value.detach()).to(buf.dtype))
        self.num_batches += 1
        work = x1.dtype
        run = [getattr(self, n).to(work) for n in self.RUNNING[:5]]
        fit = cca_from_moments(*run, self.r1, self.r2, self.gap_eps)
        self.set_statistics(fit.mean1, fit.mean2, fit.U, fit.V, fit.correlations)

    def forward(self, h1: Tensor, h2: Tensor) -> tuple[Tensor, Tensor]:
        """Fit CCA on the batch (training) or use the stored fit (eval).

        Parameters
        ----------
        h1, h2 : Tensor, shape (B, d)
            Paired features of the two views.

        Returns
        -------
        z1, z2 : Tensor, shape (B, d)
            Canonical variates ``(h1 - μ1) U`` and ``(h2 - μ2) V``.

        Raises
        ------
        FloatingPointError
            In training, when the features hold NaN or infinite values (the
            fit would fail or poison the stored statistics).
        """
        if not self.training:
            return self.project1(h1), self.project2(h2)
        if not (torch.isfinite(h1).all() and torch.isfinite(h2).all()):
            raise FloatingPointError("non-finite features before the CCA layer")
        work = work_dtype(h1)
        x1, x2 = h1.to(work), h2.to(work)
        st = cca_statistics(x1, x2, self.r1, self.r2, self.gap_eps)
        self._update_running(x1, x2, st)
        self._last.value = st.correlations
        z1 = (x1 - st.mean1) @ st.U
        z2 = (x2 - st.mean2) @ st.V
        return z1.to(h1.dtype), z2.to(h2.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, r1={self.r1}, r2={self.r2}, momentum={self.momentum}"
