"""Content digests of files (what a cache or a built piece was made from)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks.

    Parameters
    ----------
    path : path
        The file.
    algorithm : str
        A :mod:`hashlib` name: ``"sha256"`` (caches, checkpoints) or ``"sha1"``
        (the score digest recorded in a built piece's ``meta.yml``).
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
