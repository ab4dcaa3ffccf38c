"""Checkpoints: written atomically, read without pickle, and self-describing.

A checkpoint is a dict of plain data and tensors (loaded with
``weights_only=True``):

* ``model``: the state dict;
* ``meta``: what it is: the model's name, spec and input sizes, the
  experiment config, the split it was trained on (file, content digest,
  train and valid pieces), the data manifest's digest, and after
  ``refine_cca`` the refit's size and canonical correlations;
* training states (``last_state_*.pt``, ``best_state_*.pt``) also hold
  ``optimizer`` and, for ``--resume``, ``state`` and ``torch_rng``.

Readers check what a file is before using it: a parameters-only file or
another model's checkpoint given where a training state is expected, or
parameters whose training pieces are among the test pieces of an
evaluation, give one line saying what the file is and what was expected.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from audio_sheet_retrieval.atomic import atomic_path
from audio_sheet_retrieval.errors import AsrError

FORMAT = 2
"""Version of the ``meta`` entry (1: checkpoints without one)."""

TRAINING_KEYS = ("model", "optimizer", "state", "torch_rng")
"""Entries of a training state that ``--resume`` continues."""


def save_atomic(obj: dict, path: str | Path) -> None:
    """Serialise ``obj`` with ``torch.save``, then write it atomically to ``path``.

    The bytes are made in memory first, so a full disk or a read-only folder
    surfaces as one :class:`AsrError` naming ``path`` (from
    :func:`~audio_sheet_retrieval.atomic.atomic_path`), the partial temporary
    file is removed and an existing ``path`` is left as it was.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def model_meta(model, /, **fields) -> dict:
    """The ``meta`` entry of a checkpoint of ``model`` (plain data).

    Parameters
    ----------
    model : TwoBranchModel
    **fields
        More plain data: ``model`` (the model file's name, ``demo`` for
        ``models/demo.py``), ``config``, the split's provenance
        (:func:`~audio_sheet_retrieval.data.mutopia.split_provenance`), ...

    Returns
    -------
    dict
        ``format``, ``model`` (None unless given), ``spec``, ``inputs`` (``sheet``
        and ``spec`` sizes) and ``fields``.
    """
    meta = {"format": FORMAT, "model": None, "spec": model.spec.to_dict(),
            "inputs": {"sheet": list(model.raw_sheet_shape), "spec": list(model.spec_shape)}}
    meta.update(fields)
    return meta


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain data only).

    Raises
    ------
    AsrError
        When the file is missing or not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: checkpoint not found; train first with run_train.py "
                       "(or refine_cca.py for --estimate_UV)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle/zip errors of many kinds
        raise AsrError(f"{path}: not a readable checkpoint ({type(err).__name__}); "
                       "delete it and train again") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise AsrError(f"{path}: not a checkpoint of this toolkit (no 'model' entry)")
    if not isinstance(obj.get("meta", {}), dict):
        raise AsrError(f"{path}: not a checkpoint of this toolkit (its 'meta' is not a mapping)")
    return obj


def _differences(recorded: dict, current: dict) -> list[str]:
    keys = sorted(set(recorded) | set(current))
    return [f"{k} {recorded.get(k)!r} vs {current.get(k)!r}" for k in keys
            if recorded.get(k) != current.get(k)]


def check_model(ckpt: dict, model, path: str | Path, name: str | None = None) -> None:
    """Refuse a checkpoint whose ``meta`` says it belongs to another model.

    Parameters
    ----------
    ckpt : dict
        From :func:`load_checkpoint`; without ``meta`` (older files) nothing is checked
        here and the state dict's keys and shapes decide.
    model : TwoBranchModel
        The model the checkpoint is meant for.
    path : path
        The checkpoint (named in the error).
    name : str, optional
        The model file's name; checked when both sides know it.
    """
    meta = ckpt.get("meta") or {}
    recorded = meta.get("model")
    if name and recorded and recorded != name:
        raise AsrError(f"{path}: a checkpoint of model {recorded}, not of {name}; pass "
                       f"--model models/{recorded}.py or the checkpoint of {name}")
    if "spec" in meta and meta["spec"] != model.spec.to_dict():
        diff = _differences(meta["spec"], model.spec.to_dict())
        raise AsrError(f"{path}: a checkpoint of a model with another spec ({'; '.join(diff[:3])}); "
                       "pass the model file it was trained with")
    inputs = {"sheet": list(model.raw_sheet_shape), "spec": list(model.spec_shape)}
    if "inputs" in meta and meta["inputs"] != inputs:
        raise AsrError(f"{path}: trained on inputs {meta['inputs']}, this config gives {inputs}; "
                       "pass the config it was trained with")


def load_model_state(model: torch.nn.Module, path: str | Path, name: str | None = None) -> dict:
    """Load the ``model`` entry of a checkpoint into ``model``; returns the checkpoint.

    Raises
    ------
    AsrError
        When the file is not a checkpoint of this model (see :func:`check_model`) or
        its parameters do not fit.
    """
    ckpt = load_checkpoint(path, map_location=next(model.parameters()).device)
    check_model(ckpt, model, path, name)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise AsrError(f"{path}: parameters do not fit this model "
                       f"({str(err).splitlines()[0][:120]}); check --model") from None
    return ckpt


def load_training_state(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        meta: dict) -> dict:
    """Load a training state for ``--resume`` into ``model`` and ``optimizer``.

    Parameters
    ----------
    path : path
        ``last_state_<tag>.pt``.
    model : TwoBranchModel
    optimizer : torch.optim.Optimizer
    meta : dict
        The running experiment's :func:`model_meta` (model name, split digest...).

    Returns
    -------
    dict
        The checkpoint (``state`` and ``torch_rng`` still to be applied).

    Raises
    ------
    AsrError
        One line saying what the file is and what was expected: a
        parameters-only file, another model's checkpoint, a state trained on
        another split, or parameters that do not fit.
    """
    ckpt = load_checkpoint(path, map_location=next(model.parameters()).device)
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        what = ("a parameters-only file (weights, as in params_<tag>.pt)" if set(ckpt) <= {"model", "meta"}
                else f"a checkpoint without {', '.join(missing)}")
        raise AsrError(f"{path}: {what}, not a training state; --resume continues from the "
                       "last_state_<tag>.pt that run_train.py writes after every epoch: restore "
                       "that file, or start over without --resume")
    check_model(ckpt, model, path, meta.get("model"))
    recorded = (ckpt.get("meta") or {}).get("split_digest")
    if recorded and meta.get("split_digest") and recorded != meta["split_digest"]:
        raise AsrError(f"{path}: trained so far on another split (content digest {recorded[:12]}, "
                       f"now {meta['split_digest'][:12]}); resuming would mix the two: restore "
                       "the split file, or start over without --resume")
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise AsrError(f"{path}: not a training state of this model "
                       f"({str(err).splitlines()[0][:120]}); start over without --resume") from None
    return ckpt


def check_unseen(ckpt: dict, path: str | Path, test_pieces: list[str], split_file: str | Path,
                 allow_overlap: bool = False) -> list[str] | None:
    """Refuse to evaluate parameters on test pieces they were trained on.

    Parameters
    ----------
    ckpt : dict
        The loaded parameters: their ``meta`` records the ``train_pieces`` of
        training and, after ``refine_cca``, those of the CCA refit.
    path : path
        The parameters file (named in the error).
    test_pieces : list of str
        The evaluation split's test pieces.
    split_file : path
        The evaluation split (named in the error).
    allow_overlap : bool
        Return the overlap instead of refusing (``--allow_train_overlap``: smoke
        tests on tiny data; the overlap is written into the result files).

    Returns
    -------
    list of str or None
        The test pieces that were training (or CCA refit) pieces, empty when
        none; None when the checkpoint records no training pieces (older
        files, the shipped models).

    Raises
    ------
    AsrError
        When test pieces were training pieces and ``allow_overlap`` is False.
    """
    meta = ckpt.get("meta") or {}
    refit = meta.get("cca_refit") or {}
    if meta.get("train_pieces") is None and refit.get("train_pieces") is None:
        return None
    seen = set(meta.get("train_pieces") or []) | set(refit.get("train_pieces") or [])
    overlap = sorted(seen & set(test_pieces))
    if overlap and not allow_overlap:
        more = f" and {len(overlap) - 3} more" if len(overlap) > 3 else ""
        raise AsrError(f"{split_file}: {len(overlap)} of its {len(test_pieces)} test pieces were "
                       f"training pieces of {path} ({', '.join(overlap[:3])}{more}); evaluate on "
                       f"the split it was trained with (content digest "
                       f"{str(meta.get('split_digest', '?'))[:12]}) or another whose test pieces "
                       "it has not seen (--allow_train_overlap only for a smoke test)")
    return overlap


def eval_provenance(ckpt: dict, split: dict, overlap: list[str] | None) -> dict:
    """Plain fields for result files: the evaluation's split and the parameters' training.

    Parameters
    ----------
    ckpt : dict
        The evaluated parameters.
    split : dict
        :func:`~audio_sheet_retrieval.data.mutopia.split_provenance` of the evaluation.
    overlap : list of str or None
        From :func:`check_unseen`.

    Returns
    -------
    dict
        ``split_digest``, ``data_manifest_sha1`` (evaluation data),
        ``params_split_digest`` and ``params_data_manifest_sha1`` (training data,
        None when unrecorded), ``train_test_overlap``.
    """
    meta = ckpt.get("meta") or {}
    return {"split_digest": split["split_digest"],
            "data_manifest_sha1": split["data_manifest_sha1"],
            "params_split_digest": meta.get("split_digest"),
            "params_data_manifest_sha1": meta.get("data_manifest_sha1"),
            "train_test_overlap": overlap}
