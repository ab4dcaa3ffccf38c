"""The two-branch audio--sheet model assembled from a :class:`ModelSpec`.

::

    sheet (B, 160, 200) 0..255 -> prepare_sheet -> (B, 1, h, w) -> sheet Encoder ----> (B, 32)
    spec (B, 92, T) ------------> prepare_spec --> (B, 1, 92, T) -> [SoftAttention]
                                                    -> audio Encoder ----------------> (B, 32)
    (B, 32), (B, 32) -> projection (CCA or learned) -> L2 norm -> (z_sheet, z_audio)

A model file under ``models/`` is a :class:`ModelSpec` plus ``build_model``;
the experiment config (YAML) supplies the input sizes.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.nn.attention import SoftAttention
from audio_sheet_retrieval.nn.cca import R_DEFAULT, CCAProjection, Projection
from audio_sheet_retrieval.nn.encoder import HEADS, Encoder
from audio_sheet_retrieval.nn.learned_projection import LearnedProjection
from audio_sheet_retrieval.nn.losses import ranking_loss

PROJECTIONS = ("cca", "learned")
CONFIG_KEYS = {
    "SPEC_BINS": "frequency bins of a spectrogram excerpt, 92",
    "SPEC_CONTEXT": "frames of a spectrogram excerpt, e.g. 42, 84 or 168",
    "STAFF_HEIGHT": "rows of a sheet snippet in pixels, 160",
    "SHEET_CONTEXT": "columns of a sheet snippet in pixels, 200",
}
"""Experiment-config keys the model needs, with what they mean."""

ArrayLike = np.ndarray | Tensor


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Architecture and training constants of one model (a ``models/*.py`` file).

    Attributes
    ----------
    sheet_shape : (int, int)
        (rows, columns) of a sheet snippet after :meth:`TwoBranchModel.prepare_sheet`,
        in pixels: the raw (STAFF_HEIGHT, SHEET_CONTEXT) snippet, or half of it
        for the ``rsz`` models.
    n_filters : int
        F of both encoders (F, 2F, 4F, 4F filters per block).
    head : {'gap', 'dense'}
        Encoder head (see :mod:`~audio_sheet_retrieval.nn.encoder`).
    audio_dense_norm : bool
        ``dense`` head: batch norm on the audio encoder's 1×1 convolution
        before its dense layer, as in the original's dense models (BL2, +Att,
        −CCA); the sheet encoder has none there.
    attention : bool
        Soft frame attention before the audio encoder.
    attention_filters : int
        F of the attention CNN.
    projection : {'cca', 'learned'}
        Joint projection: the CCA layer or the learned ablation (−CCA).
    latent : int
        Dimension of the codes.
    margin : float
        Hinge margin of the ranking loss.
    symmetric : bool
        Also rank sheets for each audio excerpt in the loss.
    cca_momentum : float
        Weight of each training batch in the CCA layer's running moments, from
        which the stored (inference) projection is fitted; 1.0 keeps only the
        last batch, as the original did.
    r1, r2 : float
        Covariance ridges of the CCA layer.
    tno_weight : float
        Weight of the trace-norm term ``-mean(correlations)`` (0: off).
    lr : float
        Adam learning rate.
    batch_size : int
        Training pairs per batch (the CCA layer needs >= 2, ideally >= latent).
    weight_decay : float
        L2 coefficient: ``weight_decay · Σ w²`` over all weights (not biases)
        is added to the loss, as in the original.
    max_epochs : int
        Upper bound on training epochs (an epoch is 10,000 samples).
    patience : int
        Epochs without validation improvement before a refinement step.
    refinement_steps : int
        How often the best parameters are reloaded with ``lr × lr_multiplier``.
    refinement_patience : int
        Patience after each refinement step.
    lr_multiplier : float
        Learning-rate factor per refinement step.
    """

    sheet_shape: tuple[int, int] = (80, 100)
    n_filters: int = 24
    head: str = "gap"
    audio_dense_norm: bool = False
    attention: bool = False
    attention_filters: int = 24
    projection: str = "cca"
    latent: int = 32
    margin: float = 0.7
    symmetric: bool = False
    r1: float = R_DEFAULT
    cca_momentum: float = 0.05
    r2: float = R_DEFAULT
    tno_weight: float = 0.0
    lr: float = 0.002
    batch_size: int = 100
    weight_decay: float = 1e-5
    max_epochs: int = 1000
    patience: int = 15
    refinement_steps: int = 10
    refinement_patience: int = 10
    lr_multiplier: float = 0.5

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"ModelSpec.head must be one of {HEADS}, got {self.head!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"ModelSpec.projection must be one of {PROJECTIONS}, "
                             f"got {self.projection!r}")
        if len(self.sheet_shape) != 2 or min(self.sheet_shape) < 16:
            raise ValueError(f"ModelSpec.sheet_shape must be (rows, cols) >= 16, "
                             f"got {self.sheet_shape!r}")
        for name in ("n_filters", "attention_filters", "latent", "batch_size", "max_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ModelSpec.{name} must be positive, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ValueError(f"ModelSpec.batch_size must be >= 2, got {self.batch_size}")
        if self.audio_dense_norm and self.head != "dense":
            raise ValueError("ModelSpec.audio_dense_norm needs head='dense'")

    def to_dict(self) -> dict:
        """The spec as plain data (tuples as lists), for checkpoints and YAML."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def replace(self, overrides: Mapping[str, Any], source: str) -> ModelSpec:
        """A copy with some fields changed (e.g. by a shipped model's ``meta.yaml``).

        Parameters
        ----------
        overrides : mapping
            Field name -> value.
        source : str
            Where the overrides come from (named in errors).

        Raises
        ------
        AsrError
            For an unknown field or an invalid value.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise AsrError(f"{source}: unknown model spec field(s) {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(fields))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        try:
            return dataclasses.replace(self, **values)
        except (TypeError, ValueError) as err:
            raise AsrError(f"{source}: invalid model spec override ({err})") from None


def _config_int(config: Mapping[str, Any], key: str) -> int:
    if key not in config:
        raise AsrError(f"experiment config lacks {key} ({CONFIG_KEYS[key]}); add it to the "
                       "config YAML")
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AsrError(f"experiment config {key} must be a positive integer, got {value!r}; "
                       "fix the config YAML")
    return int(value)


class TwoBranchModel(nn.Module):
    """Sheet and audio encoders joined by a projection layer.

    Parameters
    ----------
    spec : ModelSpec
        Architecture and training constants.
    config : mapping
        Experiment config with SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT and
        SHEET_CONTEXT (see :data:`CONFIG_KEYS`); other keys are ignored.

    Attributes
    ----------
    sheet_encoder, spec_encoder : Encoder
    attention : SoftAttention or None
    projection : Projection
        :class:`CCAProjection` or :class:`LearnedProjection`; holds the
        statistics used in eval mode.
    raw_sheet_shape : (int, int)
        (STAFF_HEIGHT, SHEET_CONTEXT), the snippet size before preparation.
    spec_shape : (int, int)
        (SPEC_BINS, SPEC_CONTEXT).

    Notes
    -----
    Methods take tensors on the model's device, except ``embed_*`` which also
    move their inputs. Nothing here reads or writes files.
    """

    def __init__(self, spec: ModelSpec, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.spec = spec
        self.raw_sheet_shape = (_config_int(config, "STAFF_HEIGHT"),
                                _config_int(config, "SHEET_CONTEXT"))
        self.spec_shape = (_config_int(config, "SPEC_BINS"), _config_int(config, "SPEC_CONTEXT"))
        if any(s > r for s, r in zip(spec.sheet_shape, self.raw_sheet_shape, strict=True)):
            raise AsrError(f"model sheet_shape {spec.sheet_shape} is larger than the config's "
                           f"snippet {self.raw_sheet_shape}; raise STAFF_HEIGHT/SHEET_CONTEXT")
        self.sheet_encoder = Encoder(spec.sheet_shape, spec.n_filters, spec.latent, spec.head)
        self.attention = SoftAttention(spec.attention_filters) if spec.attention else None
        self.spec_encoder = Encoder(self.spec_shape, spec.n_filters, spec.latent, spec.head,
                                    dense_norm=spec.audio_dense_norm)
        self.projection: Projection = (
            CCAProjection(spec.latent, spec.r1, spec.r2, momentum=spec.cca_momentum)
            if spec.projection == "cca"
            else LearnedProjection(spec.latent))

    # ------------------------------------------------------------ inputs

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def prepare_sheet(self, sheet: ArrayLike) -> Tensor:
        """Scale raw sheet snippets to [0, 1] and resize them to ``spec.sheet_shape``.

        Parameters
        ----------
        sheet : ndarray or Tensor, shape (B, STAFF_HEIGHT, SHEET_CONTEXT) or (B, 1, ...)
            Grey values 0..255 (uint8 or float; white = 255).

        Returns
        -------
        Tensor, shape (B, 1, rows, cols), float32
            ``sheet / 255``, shrunk by area averaging when ``sheet_shape`` is
            smaller (2×2 average pooling for the ``rsz`` models). On the
            input's device (CPU for arrays).
        """
        x = torch.as_tensor(sheet)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[2:]) != self.raw_sheet_shape:
            raise ValueError(f"sheet snippets must be (B, {self.raw_sheet_shape[0]}, "
                             f"{self.raw_sheet_shape[1]}), got {tuple(x.shape)}")
        x = x.to(torch.float32) / 255.0
        if tuple(self.spec.sheet_shape) != self.raw_sheet_shape:
            x = F.adaptive_avg_pool2d(x, self.spec.sheet_shape)
        return x

    def prepare_spec(self, spec: ArrayLike) -> Tensor:
        """Add the channel axis to spectrogram excerpts (values are used raw).

        Parameters
        ----------
        spec : ndarray or Tensor, shape (B, SPEC_BINS, T)
            Log-magnitude excerpts, T frames at 20 fps.

        Returns
        -------
        Tensor, shape (B, 1, SPEC_BINS, T), float32, on the input's device.
        """
        x = torch.as_tensor(spec)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.spec_shape[0]:
            raise ValueError(f"spectrogram excerpts must be (B, {self.spec_shape[0]}, T), "
                             f"got {tuple(x.shape)}")
        return x.to(torch.float32)

    # ------------------------------------------------------------ branches

    def encode_sheet(self, x: Tensor) -> Tensor:
        """Prepared sheets (B, 1, rows, cols) -> features (B, latent) before the projection."""
        return self.sheet_encoder(x)

    def encode_spec(self, x: Tensor, return_attention: bool = False
                    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Prepared excerpts (B, 1, bins, T) -> features (B, latent) before the projection.

        With ``return_attention`` also the frame weights (B, T), or None for
        models without attention.
        """
        weights = None
        if self.attention is not None:
            x, weights = self.attention(x)
        h = self.spec_encoder(x)
        return (h, weights) if return_attention else h

    def forward(self, sheet: Tensor, spec: Tensor) -> tuple[Tensor, Tensor]:
        """Embed paired prepared inputs.

        Parameters
        ----------
        sheet : Tensor, shape (B, 1, rows, cols)
            From :meth:`prepare_sheet`.
        spec : Tensor, shape (B, 1, bins, T)
            From :meth:`prepare_spec`.

        Returns
        -------
        z_sheet, z_audio : Tensor, shape (B, latent)
            Projected, unit-norm codes. In training mode the CCA layer fits
            the batch (B >= 2) and stores its statistics; eval mode uses them.
        """
        z_sheet, z_audio = self.projection(self.encode_sheet(sheet), self.encode_spec(spec))
        return F.normalize(z_sheet, dim=1), F.normalize(z_audio, dim=1)

    def loss(self, z_sheet: Tensor, z_audio: Tensor) -> Tensor:
        """Ranking loss of a batch of codes (+ the trace-norm term if weighted)."""
        loss = ranking_loss(z_sheet, z_audio, self.spec.margin, self.spec.symmetric)
        if self.spec.tno_weight:
            loss = loss + self.spec.tno_weight * self.projection.trace_norm_loss()
        return loss

    # ------------------------------------------------------------ retrieval

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.train(was_training)

    def embed_sheet(self, sheet: ArrayLike, batch_size: int = 256,
                    prepared: bool = False) -> Tensor:
        """Codes of sheet snippets alone, with the stored projection statistics.

        Runs in eval mode without gradients (the previous mode is restored).

        Parameters
        ----------
        sheet : ndarray or Tensor
            Raw snippets (N, STAFF_HEIGHT, SHEET_CONTEXT) 0..255, or prepared
            (N, 1, rows, cols) when ``prepared``; any device.
        batch_size : int
            Snippets per forward pass.
        prepared : bool
            Input is already :meth:`prepare_sheet` output.

        Returns
        -------
        Tensor, shape (N, latent), unit norm, on the model's device.
        """
        return self._embed(sheet, batch_size, self.prepare_sheet, prepared, self.encode_sheet,
                           self.projection.project1)

    def embed_spec(self, spec: ArrayLike, batch_size: int = 256,
                   prepared: bool = False) -> Tensor:
        """Codes of spectrogram excerpts alone, with the stored projection statistics.

        Parameters
        ----------
        spec : ndarray or Tensor
            Raw excerpts (N, SPEC_BINS, T), or prepared (N, 1, SPEC_BINS, T)
            when ``prepared``; any device.
        batch_size, prepared
            As in :meth:`embed_sheet`.

        Returns
        -------
        Tensor, shape (N, latent), unit norm, on the model's device.
        """
        return self._embed(spec, batch_size, self.prepare_spec, prepared, self.encode_spec,
                           self.projection.project2)

    def _embed(self, x: ArrayLike, batch_size: int, prepare, prepared: bool, encode,
               project) -> Tensor:
        device = self.device
        out = []
        with self._inference():
            for lo in range(0, len(x), batch_size):
                chunk = x[lo:lo + batch_size]
                chunk = torch.as_tensor(chunk) if prepared else prepare(chunk)
                out.append(F.normalize(project(encode(chunk.to(device))), dim=1))
        if not out:
            return torch.zeros(0, self.spec.latent, device=device)
        return torch.cat(out)

    # ------------------------------------------------------------ training helpers

    def make_optimizer(self, lr: float | None = None) -> torch.optim.Adam:
        """Adam with the spec's learning rate and L2 penalty.

        The original added ``weight_decay · Σ w²`` over weights (Lasagne's
        regularizable parameters: not biases or batch-norm shifts) to the
        loss; its gradient is Adam's coupled ``weight_decay`` of twice that.
        """
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if name.endswith("bias") else decay).append(param)
        return torch.optim.Adam(
            [{"params": decay, "weight_decay": 2.0 * self.spec.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=self.spec.lr if lr is None else lr)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
