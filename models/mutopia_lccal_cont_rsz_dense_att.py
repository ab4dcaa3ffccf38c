"""−CCA (ISMIR 2019 ablation): +Att with a learned projection instead of the CCA layer.

The original file meant to drop the CCA layer but still built it (its switch
was flipped after the model function was bound); here the projection really is
the learned one: trainable 32×32 matrices (identity at start) and running
means, trained only through the ranking loss. No CCA refinement applies.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(80, 100),    # rows, columns in pixels after the ½ resize
    n_filters=24,
    head="dense",
    attention=True,
    attention_filters=24,
    projection="learned",
    patience=60,
    refinement_steps=5,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
