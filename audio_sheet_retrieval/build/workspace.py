"""Where a build writes, and the one way it removes anything.

One builder at a time owns a data root: :class:`Workspace` takes an exclusive
lock on ``<root>/.build.lock`` (``flock``; forked workers share it, so the
root stays locked while any process of the build lives) and gives the build
its own work folder, ``<root>/.building/<pid>-<random>/``. A piece is written
into ``<work folder>/<piece>`` and renamed to ``<root>/<piece>`` when complete.
Work folders left by a killed build are removed by the next build, which holds
the lock, so no live build's work is touched.

Nothing is removed except through :func:`remove_work_tree`, which refuses any
path that is not strictly inside ``<root>/.building``. A piece folder that is
replaced is first renamed into the work folder, and only after
:func:`is_builder_piece` has confirmed that this builder wrote it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from pathlib import Path

from audio_sheet_retrieval.data.layout import BUILDER_KEY, FORMAT_KEY, PIECE_NAME, read_meta
from audio_sheet_retrieval.errors import AsrError

WORK_DIR = ".building"
"""Folder of the data root that holds the work folders of builds."""
LOCK_FILE = ".build.lock"
"""File of the data root that a build locks."""


class RootBusyError(AsrError):
    """Another build holds the data root's lock (a runtime condition, not bad input)."""


class UnsafeRemovalError(RuntimeError):
    """A removal outside the build's own work folders was refused."""


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies strictly inside ``folder`` (lexically, no symlink resolution)."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return folder in path.parents


def remove_work_tree(path: str | Path, root: str | Path) -> None:
    """Remove a file or folder inside ``<root>/.building``; refuse anything else.

    Parameters
    ----------
    path : path
        What to remove; it must lie strictly inside ``<root>/.building``. A
        symbolic link is removed as a link (its target is not touched).
    root : path
        The data root.

    Raises
    ------
    UnsafeRemovalError
        When ``path`` is not inside the work folder, or the work folder is a
        symbolic link (which could lead anywhere).
    """
    path, work = Path(path), Path(root) / WORK_DIR
    if not _inside(path, work) or work.is_symlink() or any(
            p.is_symlink() for p in Path(os.path.abspath(path)).parents
            if _inside(p, work)):
        raise UnsafeRemovalError(f"{path}: refusing to remove it; a build removes only what lies "
                                 f"inside its work folder {work}")
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def is_builder_piece(folder: str | Path) -> bool:
    """Whether ``folder`` is a piece folder that ``build_dataset.py`` wrote.

    True for a real folder (not a link) with a valid piece name and a
    ``meta.yml`` that carries the builder's marker (any data format version);
    false for anything else, e.g. a piece of the real MSMD download.
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or not PIECE_NAME.match(folder.name):
        return False
    meta = read_meta(folder)
    return meta is not None and (BUILDER_KEY in meta or FORMAT_KEY in meta)


def check_replaceable(final: str | Path) -> None:
    """Raise ``ValueError`` when ``final`` exists and is not a piece this builder wrote."""
    if os.path.lexists(final) and not is_builder_piece(final):
        raise ValueError(f"{final} exists and build_dataset.py did not write it; move it away "
                         "or build into another --root")


class Workspace:
    """The lock of a data root and this build's own work folder (a context manager).

    Parameters
    ----------
    root : path
        The data root; created if missing.

    Raises
    ------
    RootBusyError
        On entering, when another build holds the root.
    AsrError
        On entering, when the root, its lock file or its work folder is not
        what a build can use (a file, a symbolic link).

    Examples
    --------
    >>> with Workspace(root) as ws:                                # doctest: +SKIP
    ...     tmp = ws.new_piece_folder("bach__bwv846")
    ...     ...  # write the piece into tmp
    ...     ws.install(tmp)
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.work = self.root / WORK_DIR
        self.run_dir = self.work / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._fd: int | None = None

    def __getstate__(self) -> dict:
        """A copy sent to a worker process holds no lock (only the paths)."""
        return {**self.__dict__, "_fd": None}

    def __enter__(self) -> Workspace:
        if self.root.exists() and not self.root.is_dir():
            raise AsrError(f"{self.root}: not a folder; give --root a folder for the data")
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if self.work.is_symlink() or (self.work.exists() and not self.work.is_dir()):
                raise AsrError(f"{self.work}: not a folder (a link or a file); remove it, "
                               "the builder keeps its work there")
            self.work.mkdir(exist_ok=True)
            for stale in sorted(self.work.iterdir()):  # left by killed builds: we hold the lock
                remove_work_tree(stale, self.root)
            self.run_dir.mkdir()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.run_dir.exists():
                remove_work_tree(self.run_dir, self.root)
            try:
                self.work.rmdir()  # only when empty
            except OSError:
                pass
        finally:
            self._unlock()

    def _lock(self) -> None:
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            raise AsrError(f"{path}: cannot open the build lock ({err.strerror}); "
                           "remove it if it is not a regular file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RootBusyError(f"{self.root}: another build (pid {holder}) is writing to this data "
                                "root; wait until it ends, or build into another --root") from None
        except OSError as err:  # e.g. a file system without locks
            os.close(fd)
            raise AsrError(f"{path}: cannot lock the data root ({err.strerror}); build into a folder "
                           "on a local disk") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock (once forked workers have gone too)
            self._fd = None

    def new_piece_folder(self, name: str) -> Path:
        """A new, empty folder in this build's work folder for piece ``name``."""
        if not PIECE_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid piece name")
        folder = self.run_dir / name
        folder.mkdir()
        return folder

    def install(self, folder: Path) -> Path:
        """Move a complete piece from the work folder to ``<root>/<name>``.

        A piece already there is replaced only when this builder wrote it
        (:func:`is_builder_piece`): it is first renamed into the work folder,
        then removed.

        Raises
        ------
        ValueError
            When ``<root>/<name>`` exists and this builder did not write it
            (nothing is changed).
        """
        folder = Path(folder)
        if folder.parent != self.run_dir or not PIECE_NAME.match(folder.name):
            raise UnsafeRemovalError(f"{folder}: not a piece folder of this build")
        final = self.root / folder.name
        old = None
        check_replaceable(final)
        if os.path.lexists(final):
            old = self.run_dir / f"{folder.name}.replaced"
            os.rename(final, old)
        os.rename(folder, final)
        if old is not None:
            remove_work_tree(old, self.root)
        return final
