"""BL2 (ISMIR 2019): half-resolution sheets, F=24, dense heads, CCA.

As BL1, but each encoder ends with a linear layer from the flattened 32-channel
map to 32 dimensions instead of global average pooling, so the code keeps
where in the snippet/excerpt things happen. As in the original, the audio
encoder batch-normalises its 1×1 convolution before that layer and the sheet
encoder does not (the shipped ``pretrained/`` BL2 was trained without that
batch norm; its ``meta.yaml`` selects ``audio_dense_norm: false``). Early
stopping after 60 epochs without improvement, 5 refinement steps.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(80, 100),    # rows, columns in pixels after the ½ resize
    n_filters=24,
    head="dense",
    audio_dense_norm=True,    # batch norm on the audio 1×1 convolution, as the original
    attention=False,
    projection="cca",
    patience=60,
    refinement_steps=5,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
