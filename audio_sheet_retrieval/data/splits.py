"""Split files: the content digest that checkpoints and results record.

A split is ``{"train": [...], "valid": [...], "test": [...]}`` (piece names).
Its digest depends on which pieces are in which list, not on their order or
on the file's name, so two experiments can tell whether they used the same
split even when the file was renamed, and that they did not when it was
rewritten.
"""

from __future__ import annotations

import hashlib

import yaml

SPLIT_KEYS = ("train", "valid", "test")


def split_digest(split: dict) -> str:
    """SHA-1 (hex) of a split's content: its train/valid/test lists, each sorted, no duplicates.

    Parameters
    ----------
    split : dict
        ``train``, ``valid`` and ``test`` lists of piece names (absent keys
        count as empty lists; other keys are ignored).

    Returns
    -------
    str
        40 hex digits.
    """
    canonical = {k: sorted({str(n) for n in (split.get(k) or [])}) for k in SPLIT_KEYS}
    return hashlib.sha1(yaml.safe_dump(canonical, sort_keys=True).encode("utf-8")).hexdigest()
