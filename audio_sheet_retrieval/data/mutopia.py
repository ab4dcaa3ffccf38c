"""From a data root, a split file and a configuration to train/valid/test pools."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm import tqdm

from audio_sheet_retrieval.data.msmd import Piece, load_split
from audio_sheet_retrieval.data.pools import Augmentation, SnippetPool
from audio_sheet_retrieval.data.prepare import prepare_piece
from audio_sheet_retrieval.data.splits import split_digest
from audio_sheet_retrieval.errors import AsrError, UsageError


def manifest_digest(root: str | Path) -> str | None:
    """SHA-1 (hex) of ``<root>/manifest.yaml``, or None for a root without one (e.g. MSMD)."""
    path = Path(root) / "manifest.yaml"
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise AsrError(f"{path}: unreadable ({err.strerror or err})") from None


def split_provenance(root: str | Path, split_file: str | Path) -> dict:
    """What an experiment records of its data: the split's content and the data's manifest.

    Returns
    -------
    dict
        ``split_file`` (str), ``split_digest`` (see
        :func:`~audio_sheet_retrieval.data.splits.split_digest`), ``data_root``,
        ``data_manifest_sha1`` (None without a manifest), and the sorted
        ``train_pieces``, ``valid_pieces`` and ``test_pieces``.
    """
    split = load_split(split_file)
    return {"split_file": str(split_file), "split_digest": split_digest(split),
            "data_root": str(root), "data_manifest_sha1": manifest_digest(root),
            **{f"{k}_pieces": sorted(split[k]) for k in ("train", "valid", "test")}}


def check_split_pieces(root: Path, split: dict[str, list[str]], split_file: str | Path) -> None:
    """Raise :class:`AsrError` if the split names pieces absent from ``root``."""
    if not Path(root).is_dir():
        raise UsageError(f"{root}: data root not found; pass --data_root, set DATA_ROOT_MSMD, "
                         "or build data with build_dataset.py")
    absent = [n for names in split.values() for n in names if not (Path(root) / n).is_dir()]
    if absent:
        more = f" (+{len(absent) - 3} more)" if len(absent) > 3 else ""
        raise AsrError(f"{split_file}: names {len(absent)} piece(s) absent from {root}: "
                       f"{', '.join(absent[:3])}{more}; build them or fix the split")


def load_pool(root: str | Path, names: list[str], config: dict, kind: str,
              progress: bool = True) -> SnippetPool:
    """One pool of the pieces ``names``.

    Parameters
    ----------
    root : path
        Data root.
    names : list of str
        Piece names.
    config : dict
        Validated experiment configuration.
    kind : str
        ``"train"`` (AUGMENT synths and tempo range, augmentation on),
        ``"valid"`` (VALID_SYNTH at VALID_TEMPO) or ``"test"`` (TEST_SYNTH at TEST_TEMPO).
    """
    if kind == "train":
        synths = list(config["AUGMENT"]["synths"])
        tempo_range = tuple(config["AUGMENT"]["tempo_range"])
    else:
        key = "VALID" if kind == "valid" else "TEST"
        synths = [config[f"{key}_SYNTH"]]
        tempo_range = (config[f"{key}_TEMPO"],) * 2
    pieces = []
    for name in tqdm(names, desc=f"loading {kind} pieces", unit="piece", disable=not progress,
                     leave=False):
        prepared = prepare_piece(Piece(root, name), synths, tempo_range, n_bins=config["SPEC_BINS"])
        if prepared.performances:
            pieces.append(prepared)
    if not pieces:
        raise AsrError(f"{root}: no {kind} piece has aligned performances of {synths}; "
                       "check the split and the config's synths")
    return SnippetPool(pieces, config["STAFF_HEIGHT"], config["SHEET_CONTEXT"],
                       config["SPEC_CONTEXT"], Augmentation.from_config(config["AUGMENT"]))


def load_pools(root: str | Path, split_file: str | Path, config: dict,
               kinds: tuple[str, ...] = ("train", "valid", "test"),
               progress: bool = True) -> dict[str, SnippetPool]:
    """Pools of a split: ``{"train": ..., "valid": ..., "test": ...}`` (those in ``kinds``)."""
    split = load_split(split_file)
    check_split_pieces(Path(root), split, split_file)
    for kind in kinds:
        if not split[kind]:
            raise AsrError(f"{split_file}: the {kind} list is empty; add pieces to it")
    return {kind: load_pool(root, split[kind], config, kind, progress) for kind in kinds}
