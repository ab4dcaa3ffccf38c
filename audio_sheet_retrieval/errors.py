"""One error type for bad input, and a wrapper that turns it into one line.

Readers validate files at the boundary and raise :class:`AsrError` with a
message that names the file and the fix; scripts run their ``main`` through
:func:`run_cli`, which prints that message as a single line and exits 1
(2 for a :class:`UsageError`, as argparse does for a bad command line).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class AsrError(Exception):
    """Bad input: a missing or corrupt file, a wrong option, an empty split.

    The message is one line that names the offending file or option and
    says how to fix it. Scripts exit with :attr:`exit_status`.
    """

    exit_status = 1


class UsageError(AsrError):
    """A wrong command line: a bad option value, a missing argument, a path that does not exist."""

    exit_status = 2


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main`` and exit; :class:`AsrError` becomes one line.

    Parameters
    ----------
    main : callable
        The script's entry point; its return value is the exit status.
    """
    try:
        status = main()
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


Warn = Callable[[str], None]
"""Receives a one-line warning that names a file (see :func:`warn_stderr`)."""


def warn_stderr(message: str) -> None:
    """Print a warning as one line on stderr: ``warning: <message>``."""
    print(f"warning: {message}", file=sys.stderr)
