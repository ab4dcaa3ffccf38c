"""BL1 (ISMIR 2019): half-resolution sheets (80×100), F=24, global-average heads, CCA.

The original ``mutopia_ccal_cont_rsz`` / ``mutopia_ccal_cont_rsz_gap``: sheet
snippets are shrunk by 2×2 averaging before the encoder. Early stopping after
30 epochs without improvement, 5 refinement steps.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(80, 100),    # rows, columns in pixels after the ½ resize
    n_filters=24,
    head="gap",
    attention=False,
    projection="cca",
    patience=30,
    refinement_steps=5,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
