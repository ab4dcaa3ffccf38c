"""Soft temporal attention over spectrogram frames (Balke et al., ISMIR 2019).

A separate CNN looks at the excerpt and gives every frame a logit; a softmax
over the frames gives weights ``a`` (summing to 1) and the excerpt is
re-weighted as ``x' = x · a · T``, so uniform attention is the identity.

Design (differs from the original on purpose): the original ended its CNN
with a 1×1 convolution to ``T = SPEC_CONTEXT`` channels and a global average,
which ties the layer to one excerpt length and gives a frame's logit no
access to *where* the evidence is. Here the CNN keeps a time axis: all four
blocks pool frequency, only the first ``time_pools`` (default 2) pool time
(with ``ceil_mode``, so every frame is covered), a 1×1 convolution gives one
logit per remaining position, averaged over frequency, and linear
interpolation by the pooling factor (centre-aligned) brings the logits back
to one per frame. It works for any number of frames T; with ``time_pools=2``
the logits have a resolution of 4 frames (0.2 s at 20 fps) and the CNN costs
about as much as the audio encoder. The logit layer starts at zero, so a
fresh layer is exactly the identity and the attention is learned only
through the ranking loss.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from audio_sheet_retrieval.nn.encoder import ConvStack


class SoftAttention(nn.Module):
    """Frame attention for spectrogram excerpts.

    Parameters
    ----------
    n_filters : int
        F of the attention CNN (24 in the original).
    time_pools : int
        How many of the four blocks also pool time by 2 (0..4); the logit
        resolution is ``2**time_pools`` frames.

    Shapes
    ------
    forward(x (B, 1, bins, T)) -> (x' (B, 1, bins, T), a (B, T)), ``a`` sums
    to 1 over T. Needs bins >= 16 (92 in MSMD) and any T >= 1.
    """

    def __init__(self, n_filters: int = 24, time_pools: int = 2) -> None:
        super().__init__()
        if not 0 <= time_pools <= 4:
            raise ValueError(f"time_pools must be in 0..4, got {time_pools}")
        self.time_pools = time_pools
        pools = [(2, 2 if i < time_pools else 1) for i in range(4)]
        self.features = ConvStack(n_filters, pools, ceil_mode=True)
        self.logit = nn.Conv2d(self.features.out_channels, 1, kernel_size=1)
        nn.init.zeros_(self.logit.weight)
        nn.init.zeros_(self.logit.bias)

    def frame_logits(self, x: Tensor) -> Tensor:
        """Attention logits of (B, 1, bins, T) excerpts -> (B, T)."""
        n_frames = x.shape[-1]
        logits = self.logit(self.features(x)).mean(dim=2)          # (B, 1, ceil(T / 2**k))
        scale = 2 ** self.time_pools
        if scale > 1:
            logits = F.interpolate(logits, scale_factor=scale, mode="linear",
                                   align_corners=False)
        return logits[:, 0, :n_frames]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Re-weight the frames of (B, 1, bins, T) excerpts.

        Returns
        -------
        x_att : Tensor, shape (B, 1, bins, T)
            ``x · a · T`` (equal to ``x`` for uniform weights).
        a : Tensor, shape (B, T)
            Softmax weights over frames.
        """
        a = self.frame_logits(x).softmax(dim=-1)
        return x * (a * x.shape[-1])[:, None, None, :], a
