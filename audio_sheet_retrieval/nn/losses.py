"""The pairwise hinge ranking loss on cosine similarities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ranking_loss(z_sheet: Tensor, z_audio: Tensor, margin: float = 0.7,
                 symmetric: bool = False) -> Tensor:
    """Contrastive hinge loss over all in-batch negatives.

    With ``D = S Aᵀ`` the cosine similarities of the L2-normalised codes
    (row i: sheet i, column j: audio j), the sheet-anchored loss is the mean
    over ``i != j`` of ``max(0, margin - D_ii + D_ij)``: each sheet snippet
    must be closer to its own excerpt than to every other excerpt of the
    batch by ``margin``. ``symmetric`` averages it with the audio-anchored
    term, the mean of ``max(0, margin - D_jj + D_ij)``.

    Parameters
    ----------
    z_sheet, z_audio : Tensor, shape (B, d)
        Paired codes (row i of each belongs together), B >= 2; normalised here.
    margin : float
        Required similarity gap (0.7).
    symmetric : bool
        Add the audio-anchored direction.

    Returns
    -------
    Tensor, shape ()
        The loss (0 when every pair beats every negative by ``margin``).
    """
    n = z_sheet.shape[0]
    if n < 2 or z_audio.shape[0] != n:
        raise ValueError(f"ranking_loss needs >= 2 pairs, got {n} sheet and "
                         f"{z_audio.shape[0]} audio codes")
    sim = F.normalize(z_sheet, dim=1) @ F.normalize(z_audio, dim=1).T
    pos = sim.diagonal()
    off = ~torch.eye(n, dtype=torch.bool, device=sim.device)
    loss = F.relu(margin - pos[:, None] + sim)[off].mean()
    if symmetric:
        loss = 0.5 * (loss + F.relu(margin - pos[None, :] + sim)[off].mean())
    return loss
