"""Run an engraving tool in a sandbox: the second wall around LilyPond.

LilyPond runs any Scheme a ``.ly`` file holds and has no safe mode any more
(``-dsafe`` is a fatal error since 2.23.12; LilyPond's own advice is "an
external tool to run LilyPond in a sandbox"). The first wall is
:mod:`audio_sheet_retrieval.build.lilypond_guard`, which refuses any code
before LilyPond starts; this is the second: with bubblewrap (``bwrap``,
Debian package ``bubblewrap``) the tool sees the file system read-only except
its own work folder and a private ``/tmp``, has no network, and dies with its
parent. Where bubblewrap is missing or cannot create namespaces (some
containers), tools run unwrapped and the guard alone protects.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path


@cache
def bwrap_path() -> str | None:
    """The bubblewrap executable if it can sandbox here, else None (checked once)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        ok = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                            capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return exe if ok else None


def sandboxed(cmd: list[str], workdir: str | Path, readable: tuple[str | Path, ...] = ()) -> list[str]:
    """``cmd`` wrapped so that it can write only into ``workdir`` (and a private ``/tmp``).

    Parameters
    ----------
    cmd : list of str
        The command line (``["lilypond", ...]``).
    workdir : path
        The one folder the command may write; it runs there.
    readable : tuple of path
        Folders it may also read (the private ``/tmp`` hides the real one),
        e.g. the folder of the user's score for its includes.

    Returns
    -------
    list of str
        The wrapped command line, or ``cmd`` itself where bubblewrap cannot
        sandbox (see the module docstring).
    """
    exe = bwrap_path()
    if exe is None:
        return list(cmd)
    work = str(Path(workdir).resolve())
    binds = [arg for folder in readable for arg in ("--ro-bind", str(Path(folder).resolve()),
                                                     str(Path(folder).resolve()))]
    return [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            *binds, "--bind", work, work, "--chdir", work, "--unshare-all", "--die-with-parent",
            "--new-session", *cmd]
