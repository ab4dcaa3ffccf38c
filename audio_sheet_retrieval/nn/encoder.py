"""VGG-style convolutional encoders for sheet snippets and spectrogram excerpts.

One encoder per view: four blocks of ``[conv3×3 + BN + ELU] × 2 + max-pool``
with F, 2F, 4F, 4F filters, a linear 1×1 convolution to the latent size, and
a head that turns the map into a vector:

* ``gap``: batch norm, then global average pooling;
* ``dense``: flatten, then a linear layer to the latent size; with
  ``dense_norm`` the 1×1 convolution (then without bias) is batch-normalised
  before the flattening, as the original's dense models do in their audio
  encoder (their sheet encoder has no batch norm there).

Convolution and dense weights use He-uniform initialisation with gain 1
(Lasagne's ``HeUniform()`` default: ``U(±sqrt(3 / fan_in))``); biases start
at 0; convolutions followed by batch norm have no bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

HEADS = ("gap", "dense")


def he_uniform_(weight: Tensor) -> Tensor:
    """He-uniform initialisation with gain 1: ``U(±sqrt(3 / fan_in))``, in place."""
    return nn.init.kaiming_uniform_(weight, a=1.0)


def conv_bn_elu(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 convolution (padding 1, no bias) + batch norm + ELU; keeps H×W."""
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
    he_uniform_(conv.weight)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ELU())


class ConvStack(nn.Sequential):
    """Four VGG blocks with F, 2F, 4F, 4F filters.

    Parameters
    ----------
    n_filters : int
        F, the filters of the first block.
    pools : sequence of 4 (int, int)
        Max-pool kernel (= stride) of each block along (frequency/rows,
        time/columns); ``(1, 1)`` skips pooling.
    ceil_mode : bool
        Pool partial windows at the border (keeps every frame) instead of
        dropping them (the original's behaviour).

    Shapes
    ------
    (B, 1, H, W) -> (B, 4F, H', W') with ``H' = H // prod(row pools)``
    (``ceil`` when ``ceil_mode``), likewise ``W'``.
    """

    def __init__(self, n_filters: int, pools: Sequence[tuple[int, int]] = ((2, 2),) * 4,
                 ceil_mode: bool = False) -> None:
        widths = (n_filters, 2 * n_filters, 4 * n_filters, 4 * n_filters)
        layers: list[nn.Module] = []
        c_in = 1
        for width, pool in zip(widths, pools, strict=True):
            layers += [conv_bn_elu(c_in, width), conv_bn_elu(width, width)]
            if tuple(pool) != (1, 1):
                layers.append(nn.MaxPool2d(tuple(pool), ceil_mode=ceil_mode))
            c_in = width
        super().__init__(*layers)
        self.out_channels = c_in


class Encoder(nn.Module):
    """One view's encoder: :class:`ConvStack`, 1×1 conv to the latent size, head.

    Parameters
    ----------
    input_shape : (int, int)
        (H, W) of the prepared input in pixels or (bins, frames); the
        ``dense`` head needs it fixed, ``gap`` accepts any size >= 16×16.
    n_filters : int
        F of the :class:`ConvStack`.
    latent : int
        Output dimension (32).
    head : {'gap', 'dense'}
        See the module docstring.
    dense_norm : bool
        ``dense`` head only: batch norm on the 1×1 convolution's output
        before the dense layer.

    Shapes
    ------
    (B, 1, H, W) float -> (B, latent).
    """

    def __init__(self, input_shape: tuple[int, int], n_filters: int, latent: int = 32,
                 head: str = "gap", dense_norm: bool = False) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if dense_norm and head != "dense":
            raise ValueError("dense_norm needs head='dense' (the gap head always has batch norm)")
        self.input_shape = (int(input_shape[0]), int(input_shape[1]))
        self.head = head
        self.features = ConvStack(n_filters)
        normed = head == "gap" or dense_norm
        self.to_latent = nn.Conv2d(self.features.out_channels, latent, kernel_size=1,
                                   bias=not normed)
        he_uniform_(self.to_latent.weight)
        if self.to_latent.bias is not None:
            nn.init.zeros_(self.to_latent.bias)
        h, w = self.input_shape
        self.map_shape = (h // 16, w // 16)
        """(rows, columns) of the final feature map."""
        if min(self.map_shape) < 1:
            raise ValueError(f"input {self.input_shape} is too small for 4 poolings (min 16×16)")
        self.norm: nn.Module | None = nn.BatchNorm2d(latent) if normed else None
        if head == "dense":
            self.dense = nn.Linear(latent * self.map_shape[0] * self.map_shape[1], latent)
            he_uniform_(self.dense.weight)
            nn.init.zeros_(self.dense.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Encode (B, 1, H, W) inputs to (B, latent) features."""
        if self.head == "dense" and tuple(x.shape[-2:]) != self.input_shape:
            raise ValueError(f"dense encoder built for inputs {self.input_shape}, "
                             f"got {tuple(x.shape[-2:])}")
        x = self.to_latent(self.features(x))
        if self.norm is not None:
            x = self.norm(x)
        if self.head == "gap":
            return x.mean(dim=(2, 3))
        return self.dense(torch.flatten(x, 1))
