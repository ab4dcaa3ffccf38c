"""+Att (ISMIR 2019): BL2 with soft attention over the spectrogram frames.

A separate CNN (F=24) weights the frames of each excerpt before the audio
encoder (see ``audio_sheet_retrieval.nn.attention``); used with the medium and
long contexts (SPEC_CONTEXT 84, 168). Like BL2, the audio encoder
batch-normalises its 1×1 convolution before the dense layer (the shipped
model was trained without it: its ``meta.yaml`` selects
``audio_dense_norm: false``). Early stopping after 60 epochs without
improvement, 5 refinement steps.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(80, 100),    # rows, columns in pixels after the ½ resize
    n_filters=24,
    head="dense",
    audio_dense_norm=True,    # batch norm on the audio 1×1 convolution, as the original
    attention=True,
    attention_filters=24,
    projection="cca",
    patience=60,
    refinement_steps=5,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
