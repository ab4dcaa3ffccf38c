"""Small, fast model for CPU demos and smoke runs (not from the papers).

BL2's layout (half-resolution 80×100 sheets, dense heads, CCA layer) with
F=8 filters (8, 16, 32, 32), plus a small soft-attention CNN (F=8) over the
frames so that the demo can show attention weights: about 0.15 M parameters
and roughly a tenth of the F=24 models' compute. A forward+backward pass of
a 100-pair batch takes about half a second on one core, so ten minutes of
training see several 10,000-sample epochs. Short patience and two
refinement steps keep a demo run bounded.
"""

from audio_sheet_retrieval.nn import ModelSpec, TwoBranchModel

SPEC = ModelSpec(
    sheet_shape=(80, 100),    # rows, columns in pixels after the ½ resize
    n_filters=8,
    head="dense",
    attention=True,
    attention_filters=8,
    projection="cca",
    patience=5,
    refinement_steps=2,
    refinement_patience=3,
)


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
