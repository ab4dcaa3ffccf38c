"""Neural networks: encoders, soft attention, the CCA layer, the ranking loss
and the two-branch model built from a model file's :class:`ModelSpec`."""

from audio_sheet_retrieval.nn.attention import SoftAttention
from audio_sheet_retrieval.nn.cca import (
    CCAProjection,
    CCAStatistics,
    Projection,
    cca_statistics,
    inv_sqrtm,
    svd_square,
)
from audio_sheet_retrieval.nn.encoder import ConvStack, Encoder
from audio_sheet_retrieval.nn.learned_projection import LearnedProjection
from audio_sheet_retrieval.nn.losses import ranking_loss
from audio_sheet_retrieval.nn.model import CONFIG_KEYS, ModelSpec, TwoBranchModel
from audio_sheet_retrieval.nn.module_loader import load_model_module, model_name

__all__ = [
    "CONFIG_KEYS",
    "CCAProjection",
    "CCAStatistics",
    "ConvStack",
    "Encoder",
    "LearnedProjection",
    "ModelSpec",
    "Projection",
    "SoftAttention",
    "TwoBranchModel",
    "cca_statistics",
    "inv_sqrtm",
    "load_model_module",
    "model_name",
    "ranking_loss",
    "svd_square",
]
