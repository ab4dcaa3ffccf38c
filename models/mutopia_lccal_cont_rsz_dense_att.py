"""−CCA (ISMIR 2019 ablation): +Att with a learned projection instead of the CCA layer.

The original file meant to drop the CCA layer but still built it (its switch
was flipped after the model function was bound); here the projection really is
the learned one: trainable 32×32 matrices (identity at start) and running
means, trained only through the ranking loss. No CCA refinement applies.

Everything else is ``mutopia_ccal_cont_rsz_dense_att.py``'s spec, read from
that file beside this one.
"""

import dataclasses
from pathlib import Path

from audio_sheet_retrieval.nn import TwoBranchModel
from audio_sheet_retrieval.nn.module_loader import load_model_module

_ATT = load_model_module(Path(__file__).with_name("mutopia_ccal_cont_rsz_dense_att.py"))

SPEC = dataclasses.replace(_ATT.SPEC, projection="learned")


def build_model(config: dict) -> TwoBranchModel:
    """The model for an experiment config (SPEC_BINS, SPEC_CONTEXT, STAFF_HEIGHT, SHEET_CONTEXT)."""
    return TwoBranchModel(SPEC, config)
