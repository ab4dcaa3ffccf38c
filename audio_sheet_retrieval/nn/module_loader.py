"""Load a model file (``models/<name>.py``) by path.

A model file defines ``SPEC`` (a :class:`~.model.ModelSpec`) and optionally
``build_model(config) -> TwoBranchModel``; without one, ``build_model``
defaults to ``TwoBranchModel(SPEC, config)``. The file stem is the
experiment name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from audio_sheet_retrieval.errors import AsrError, UsageError
from audio_sheet_retrieval.nn.model import ModelSpec, TwoBranchModel

_PACKAGE = "asr_model_files"


def model_name(path: str | Path) -> str:
    """Experiment name of a model file: its stem (``models/demo.py`` -> ``demo``)."""
    return Path(path).stem


def load_model_module(path: str | Path) -> ModuleType:
    """Import a model file and check its interface.

    Parameters
    ----------
    path : str or Path
        A ``.py`` file defining ``SPEC`` and (optionally) ``build_model``.

    Returns
    -------
    module
        With ``SPEC`` (ModelSpec) and ``build_model(config: dict) -> TwoBranchModel``.

    Raises
    ------
    UsageError
        For a path that is not an existing ``.py`` file.
    AsrError
        One line naming the path: import failure, or a file without the interface.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist; pass a file such as models/demo.py")
    if path.suffix != ".py":
        raise UsageError(f"model file {path} is not a .py file; pass a file such as models/demo.py")
    name = f"{_PACKAGE}.{model_name(path)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise AsrError(f"model file {path} cannot be imported; check that it is Python source")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a broken model file: report it in one line
        sys.modules.pop(name, None)
        message = " ".join(str(err).split()) or type(err).__name__
        raise AsrError(f"model file {path} failed to import: {type(err).__name__}: "
                       f"{message}") from err
    if not isinstance(getattr(module, "SPEC", None), ModelSpec):
        raise AsrError(f"model file {path} does not define SPEC = ModelSpec(...); "
                       "see models/demo.py")
    if not hasattr(module, "build_model"):
        module.build_model = lambda config: TwoBranchModel(module.SPEC, config)
    elif not callable(module.build_model):
        raise AsrError(f"model file {path}: build_model is not a function; "
                       "define build_model(config) -> TwoBranchModel")
    return module


def build_from_module(module: ModuleType, config: dict, spec_overrides: dict | None = None,
                      source: str = "model spec overrides") -> TwoBranchModel:
    """Build a model file's network, optionally with some of its spec fields changed.

    Parameters
    ----------
    module : module
        From :func:`load_model_module`.
    config : dict
        Experiment configuration.
    spec_overrides : dict, optional
        ``ModelSpec`` fields to change, e.g. ``{"audio_dense_norm": False}`` from a
        shipped model's ``meta.yaml`` (the spec it was trained with). Without
        them the file's own ``build_model(config)`` is used.
    source : str
        Where the overrides come from (named in errors).

    Returns
    -------
    TwoBranchModel
    """
    if not spec_overrides:
        return module.build_model(config)
    if not isinstance(spec_overrides, dict):
        raise AsrError(f"{source}: 'spec' must be a mapping of ModelSpec fields")
    return TwoBranchModel(module.SPEC.replace(spec_overrides, source), config)
