"""Full-resolution CCA model: 160×200 sheet snippets, F=12, global-average heads.

The master branch's ``mutopia_ccal_cont`` (ismir-2019 ``mutopia_ccal_cont_gap``):
sheet and audio VGG encoders (12, 24, 48, 48 filters) with a 1×1 conv to 32
channels, batch norm and global average pooling, joined by the CCA layer.
Early stopping after 15 epochs without improvement, 10 refinement steps.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(160, 200),   # rows, columns in pixels: the raw snippet
    n_filters=12,
    head="gap",
    attention=False,
    projection="cca",
    patience=15,
    refinement_steps=10,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
