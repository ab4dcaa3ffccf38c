"""Worker processes that end with the build that started them.

A process pool's workers wait on a queue that only their parent feeds; when
the parent is killed (``kill -9``, out of memory) they would wait forever,
holding the data root's lock. :func:`die_with_parent`, run as the pool's
initializer, ties each worker's life to its parent's: on Linux the kernel
sends the worker SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``),
and everywhere a watchdog thread ends the worker within ``poll_s`` once its
parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _watch(parent_pid: int, poll_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    os._exit(1)


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this process when process ``parent_pid`` (its parent) ends.

    Parameters
    ----------
    parent_pid : int
        The parent's pid, read in the parent (``os.getpid()``) before the pool
        starts, so that a parent that died before this call is noticed too.
    poll_s : float
        Seconds between two checks of the watchdog thread.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, poll_s), name="watch-parent",
                     daemon=True).start()
