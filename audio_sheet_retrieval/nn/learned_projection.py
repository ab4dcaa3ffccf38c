"""The −CCA ablation done right: a learned linear projection with running means.

The original "−CCA" model meant to replace the CCA layer by trainable
projections but flipped its switch after the model was built, so it still
trained with CCA. This layer is the intended replacement: ``U`` and ``V``
are ordinary parameters (initialised to the identity), learned only through
the ranking loss; the view means are tracked with momentum like batch norm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from audio_sheet_retrieval.nn.cca import Projection


class LearnedProjection(Projection):
    """Trainable projections ``z1 = (h1 - μ1) U``, ``z2 = (h2 - μ2) V``.

    Training mode centres with the batch means and updates the running means
    ``μ ← (1 - momentum) μ + momentum · mean(batch)``; eval mode centres with
    the running means. Same interface as :class:`~.cca.CCAProjection`
    (``set_statistics`` copies into the parameters and running means).

    Parameters
    ----------
    dim : int
        Feature dimension of each view.
    momentum : float
        Weight of the batch mean in the running-mean update.

    Shapes
    ------
    forward(h1 (B, d), h2 (B, d)) -> (z1 (B, d), z2 (B, d)).
    """

    def __init__(self, dim: int, momentum: float = 0.1) -> None:
        super().__init__(dim)
        self.momentum = momentum
        self.U = nn.Parameter(torch.eye(dim))
        self.V = nn.Parameter(torch.eye(dim))
        self.register_buffer("mean1", torch.zeros(dim))
        self.register_buffer("mean2", torch.zeros(dim))
        self.register_buffer("stored_correlations", torch.zeros(dim))

    def forward(self, h1: Tensor, h2: Tensor) -> tuple[Tensor, Tensor]:
        """Project both views; training mode uses and tracks the batch means.

        Parameters
        ----------
        h1, h2 : Tensor, shape (B, d)

        Returns
        -------
        z1, z2 : Tensor, shape (B, d)
        """
        if not self.training:
            return self.project1(h1), self.project2(h2)
        mu1, mu2 = h1.mean(0), h2.mean(0)
        z1 = (h1 - mu1) @ self.U.to(h1.dtype)
        z2 = (h2 - mu2) @ self.V.to(h2.dtype)
        corr = _column_correlations(z1, z2)
        with torch.no_grad():
            self.mean1.lerp_(mu1.detach().to(self.mean1.dtype), self.momentum)
            self.mean2.lerp_(mu2.detach().to(self.mean2.dtype), self.momentum)
            self.stored_correlations.copy_(corr.detach())
        self._last.value = corr
        return z1, z2

    def extra_repr(self) -> str:
        return f"dim={self.dim}, momentum={self.momentum}"


def _column_correlations(z1: Tensor, z2: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of matching columns of centred (B, d) codes -> (d,)."""
    num = (z1 * z2).sum(0)
    den = (z1.square().sum(0) * z2.square().sum(0)).clamp_min(eps).sqrt()
    return num / den
