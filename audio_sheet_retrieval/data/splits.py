"""Split files: which pieces train, validate and test a model.

A split is ``{"train": [...], "valid": [...], "test": [...]}``, lists of
piece names, stored as YAML under ``<root>/splits/``. The builder assigns
each piece to a kind by a hash of its name, so the assignment of a piece
never depends on which other pieces exist: adding pieces to a data root never
moves a training piece into the test set. The pieces of the default collection
keep the kinds they had when the shipped models were trained
(``reference_split.yaml``, 310/25/84 pieces), so the in-domain test set stays
the one the model card reports. :func:`split_digest` identifies a split by its
content (not its file name), for checkpoints and results.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import yaml

from audio_sheet_retrieval.atomic import write_yaml_atomic
from audio_sheet_retrieval.errors import AsrError

KINDS = ("train", "valid", "test")
SPLIT_FRACTIONS = {"valid": 0.06, "test": 0.2}
"""Expected fraction of the pieces in each held-out kind (train gets the rest)."""
DEMO_SIZES = {"train": 24, "valid": 4, "test": 8}


def _unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (the first 52 bits of its SHA-1)."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:13], 16) / 16 ** 13


@cache
def reference_kinds() -> dict[str, str]:
    """Kind of each piece of the split the shipped models were trained on (piece → kind)."""
    split = yaml.safe_load((Path(__file__).parent / "reference_split.yaml").read_text())
    return {name: kind for kind in KINDS for name in split[kind]}


def split_kind(name: str, seed: int = 0, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    """The kind (``"train"``, ``"valid"`` or ``"test"``) of one piece.

    It depends on the piece's name and ``seed`` only. With ``seed`` 0 (the
    default) a piece of the reference split keeps its kind there; any other
    piece is test with probability ``fractions["test"]``, valid with
    ``fractions["valid"]``, else train, by a hash of its name.
    """
    if seed == 0 and fractions == SPLIT_FRACTIONS and name in reference_kinds():
        return reference_kinds()[name]
    u = _unit_hash(f"{seed}/{name}")
    if u < fractions["test"]:
        return "test"
    if u < fractions["test"] + fractions["valid"]:
        return "valid"
    return "train"


def make_splits(names: list[str], seed: int = 0,
                fractions: dict[str, float] = SPLIT_FRACTIONS) -> dict[str, list[str]]:
    """A stable train/valid/test split of piece names (see :func:`split_kind`).

    Each piece's kind depends on its own name and ``seed`` only, so the split of
    a larger set of pieces keeps every piece of a smaller one where it was.
    The sizes follow ``fractions`` on average; a few pieces may all fall into
    one kind.
    """
    out: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for name in sorted(set(names)):
        out[split_kind(name, seed, fractions)].append(name)
    return out


def demo_split(split: dict[str, list[str]], seed: int = 0,
               sizes: dict[str, int] = DEMO_SIZES) -> dict[str, list[str]]:
    """A small subset of a split, for quick experiments.

    Of each kind, the ``sizes[kind]`` pieces whose name hashes lowest: a piece
    stays in its kind, and it stays in the subset unless a piece added later
    hashes lower.
    """
    out = {}
    for kind in KINDS:
        names = sorted(split.get(kind, []), key=lambda n: (_unit_hash(f"demo/{seed}/{n}"), n))
        out[kind] = sorted(names[:sizes[kind]])
    return out


def canonical_split(split: dict[str, list[str]]) -> dict[str, list[str]]:
    """The split with every kind present and its names sorted (duplicates dropped)."""
    return {kind: sorted(set(split.get(kind) or [])) for kind in KINDS}


def split_digest(split: dict[str, list[str]]) -> str:
    """Content digest of a split: the SHA-1 (40 hex digits) of its canonical YAML.

    Two splits with the same pieces in each kind have the same digest, whatever
    the order of the names or the file they came from.
    """
    text = yaml.safe_dump(canonical_split(split), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_split(path: str | Path) -> dict[str, list[str]]:
    """A split YAML (``train:``, ``valid:``, ``test:`` lists of piece names).

    Raises
    ------
    AsrError
        When the file is missing, is not YAML, has no pieces, or lists
        something that is not a piece name.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: split file not found; build_dataset.py writes "
                       "<data root>/splits/*.yaml")
    try:
        split = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise AsrError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(split, dict) or not any(split.get(k) for k in KINDS):
        raise AsrError(f"{path}: a split needs train/valid/test lists of piece names")
    out = {}
    for kind in KINDS:
        names = split.get(kind) or []
        if not isinstance(names, list):
            raise AsrError(f"{path}: {kind} must be a list of piece names, not {type(names).__name__}")
        for name in names:
            if not isinstance(name, str) or not name or "/" in name or "\\" in name \
                    or name.startswith("."):
                raise AsrError(f"{path}: {kind} lists {name!r}, which is not a piece name "
                               "(a folder name of the data root); fix the split file")
        out[kind] = list(names)
    return out


def write_split(split: dict[str, list[str]], path: str | Path) -> Path:
    """Write a split without ever changing an existing split file.

    Parameters
    ----------
    split : dict
        The split to write.
    path : path
        Where it should go, e.g. ``<root>/splits/all_split.yaml``.

    Returns
    -------
    Path
        ``path`` when it did not exist or already holds this split (same
        :func:`split_digest`); otherwise a new file beside it named by the
        split's digest, ``<stem>-<digest[:8]>.yaml``, and ``path`` is left as
        it was (experiments that used it stay reproducible).
    """
    path = Path(path)
    split = canonical_split(split)
    digest = split_digest(split)
    for target in (path, path.with_name(f"{path.stem}-{digest[:8]}{path.suffix}")):
        if not target.exists():
            write_yaml_atomic(split, target)
            return target
        try:
            existing = yaml.safe_load(target.read_text())
            if split_digest(existing) == digest:
                return target
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError):
            pass  # not a split (or not readable): never written over
    raise AsrError(f"{target}: exists with other content; move it away to write the split")
