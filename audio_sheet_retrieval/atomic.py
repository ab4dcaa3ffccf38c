"""Atomic file writes: a temporary file beside the target, renamed over it on success.

A reader never sees a half-written file: the content goes to a hidden
temporary file in the target's folder (``.<name>.<random><suffix>``), which
``os.replace`` then renames over the target in one step. On failure the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from audio_sheet_retrieval.errors import AsrError


def _default_mode() -> int:
    """Permissions of a new regular file under the current umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` on success.

    Parameters
    ----------
    path : path
        The target file; its folder is created if missing.
    suffix : str
        Suffix of the temporary file (e.g. ``".png"`` where the writer infers
        the format from the name).

    Yields
    ------
    Path
        An empty temporary file in ``path``'s folder. When the block ends
        normally it replaces ``path``; when it raises it is deleted.

    Raises
    ------
    AsrError
        When the folder cannot be created or the file cannot be written
        (``OSError`` such as ENOSPC, a full disk, in the block included).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a read-only folder: one line naming the target
        raise AsrError(f"{path}: cannot write it ({err.strerror or err}); free disk space or "
                       "choose a writable folder (nothing was changed)") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write text atomically (UTF-8, newlines as given); returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_yaml_atomic(data, path: str | Path) -> Path:
    """Write plain data as YAML (keys in insertion order) atomically; returns ``path``."""
    return write_text_atomic(yaml.safe_dump(data, sort_keys=False), path)


def save_figure_atomic(fig, path: str | Path, dpi: int = 80) -> Path:
    """Save a matplotlib figure atomically (format from ``path``'s suffix, else PNG), then close it.

    Closing only concerns figures made by pyplot; pyplot is never imported here, so saving a
    ``matplotlib.figure.Figure`` leaves the caller's backend alone.
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=path.suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
    return path
