"""Refuse LilyPond input that would run code or touch other files.

A ``.ly`` file is a program: LilyPond evaluates the Scheme after every ``#``
and ``$`` (``#(system "...")`` runs a command), ``\\include`` reads any file,
``\\bookOutputName`` writes anywhere. LilyPond 2.24 has no safe mode any more
(``-dsafe`` is a fatal error since 2.23.12, its sandbox could be escaped), so
a score from elsewhere is checked here before LilyPond sees it, and refused
unless all of it is music:

- Scheme only as plain data: numbers, strings, booleans, quoted lists and
  symbols (``#'(2 2)``, ``##t``, ``#-1.5``), a few constants and grob
  callbacks by name (``#UP``, ``#ly:text-interface::print``), and calls of a
  few pure functions on such data (``#(set-global-staff-size 18)``,
  ``#(ly:make-moment 1/8)``);
- no command that reads or writes files or calls a procedure of the input's
  choosing (``\\bookOutputName``, ``\\postscript``, ``\\verbatim-file``,
  ``\\applyContext``, ...);
- ``\\include`` only of files in the score's own folder (checked the same way)
  or of LilyPond's own language and notation files (``"english.ly"``).

The scan follows LilyPond's lexer where it matters (strings with and without
escapes, ``%`` and ``%{ %}`` comments ending at CR or LF, a ``%`` inside a
lyric or markup word, ``\\`` before a quote) and refuses what it cannot read
the same way LilyPond would in every input mode.
"""

from __future__ import annotations

import re
from pathlib import Path

from audio_sheet_retrieval.errors import AsrError

_FIX = ("LilyPond files from elsewhere may not run Scheme code or use other files "
        "(LilyPond has no safe mode); remove it, or give the score as MusicXML")

FORBIDDEN_COMMANDS = {
    "bookOutputName": "writes the output elsewhere",
    "bookOutputSuffix": "writes the output elsewhere",
    "postscript": "embeds raw PostScript",
    "epsfile": "reads another file",
    "verbatim-file": "reads another file",
    "applyContext": "calls a procedure",
    "applyMusic": "calls a procedure",
    "applyOutput": "calls a procedure",
    "assertBeamSlope": "calls a procedure",
    "musicMap": "calls a procedure",
    "on-the-fly": "calls a procedure",
    "with-string-transformer": "calls a procedure",
    "if": "calls a procedure",
    "unless": "calls a procedure",
    "maininput": "is for LilyPond's own files",
}
"""Commands refused in untrusted input, with the reason."""

FORBIDDEN_WORDS = {"output-filename", "output-suffix"}
"""Paper variables that would direct the output elsewhere."""

LILYPOND_INCLUDES = frozenset((
    "arabic.ly", "articulate.ly", "bagpipe.ly", "catalan.ly", "deutsch.ly", "english.ly",
    "espanol.ly", "event-listener.ly", "gregorian.ly", "hel-arabic.ly", "italiano.ly",
    "makam.ly", "nederlands.ly", "norsk.ly", "persian.ly", "portugues.ly",
    "predefined-guitar-fretboards.ly", "predefined-guitar-ninth-fretboards.ly",
    "predefined-mandolin-fretboards.ly", "predefined-ukulele-fretboards.ly", "suomi.ly",
    "svenska.ly", "swing.ly", "turkish-makam.ly", "vlaams.ly",
))
"""LilyPond's own files that a score may include by name (pitch names, notation)."""

SCHEME_CALLS = frozenset((
    "set-global-staff-size", "set-default-paper-size", "set-paper-size", "ly:make-moment",
    "ly:make-pitch", "ly:make-duration", "cons", "list", "rgb-color", "x11-color",
    "make-dynamic-script", "+", "-", "*", "/",
))
"""Functions a score may call in Scheme (pure: they only build values)."""

SCHEME_NAMES = frozenset((
    "UP", "DOWN", "LEFT", "RIGHT", "CENTER", "START", "STOP", "X", "Y", "INF",
    "point-stencil", "empty-stencil", "black", "white", "red", "green", "blue", "cyan",
    "magenta", "yellow", "grey", "darkred", "darkgreen", "darkblue", "darkcyan",
    "darkmagenta", "darkyellow",
))
"""Constants a score may name in Scheme."""

_CALLBACK = re.compile(r"(?:ly:)?[a-z][a-z0-9-]*::[a-z][a-z0-9-]*")
_CALLBACK_CALL = re.compile(r"tuplet-number::[a-z][a-z0-9-]*")  # musicxml2ly's tuplet texts
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?(?:/\d+)?")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9:\-+*/.!?<>=_~^&@]+")
_BOOLEANS = ("#t", "#f", "#true", "#false")
_DELIMITERS = frozenset(" \t\n\r\f\v()\";")
_WORD_BREAKS = frozenset(" \t\n\r\f$#{}\"\\")  # what ends a lyric or markup word
_LETTER = re.compile(r"[A-Za-z\u0080-\U0010ffff]")
_WORD = re.compile(r"[A-Za-z\u0080-\U0010ffff]+(?:[-_][A-Za-z\u0080-\U0010ffff]+)*")
_MAX_DEPTH = 32
_MAX_INCLUDES = 64


class UnsafeScoreError(AsrError, ValueError):
    """A LilyPond file that would run code or touch other files (names the file and line)."""


class _Refused(Exception):
    def __init__(self, pos: int, what: str):
        super().__init__(what)
        self.pos, self.what = pos, what


def _string_end(text: str, i: int) -> int:
    """Index after the ``"..."`` string (backslash escapes) that starts at ``i``."""
    n = len(text)
    j = i + 1
    while j < n and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    if j >= n:
        raise _Refused(i, "a string that never ends")
    return j + 1


def _token(text: str, i: int) -> tuple[str, int]:
    """The longest run from ``i`` up to a Scheme delimiter, and where it ends."""
    j = i
    while j < len(text) and text[j] not in _DELIMITERS:
        j += 1
    return text[i:j], j


def _datum(text: str, i: int, quoted: bool, depth: int = 0) -> int:
    """Check the Scheme expression at ``i``; return the index after it.

    ``quoted``: the expression is data (under a quote) and is never
    evaluated. Otherwise it may only be a literal, an allowed name, or a
    call of an allowed function on checked arguments.
    """
    if depth > _MAX_DEPTH:
        raise _Refused(i, "Scheme nested too deeply")
    if i >= len(text):
        raise _Refused(i, "Scheme code cut off at the end of the file")
    c = text[i]
    if c == '"':
        return _string_end(text, i)
    if c == "'":
        return _datum(text, i + 1, True, depth + 1)
    if c == "(":
        return _list(text, i, quoted, depth)
    token, end = _token(text, i)
    if token in _BOOLEANS:
        return end
    if not token or not _SAFE_TOKEN.fullmatch(token):
        shown = token or text[i]
        raise _Refused(i, f"Scheme code {shown[:30]!r}")
    if quoted or _NUMBER.fullmatch(token) or token in SCHEME_NAMES or _CALLBACK.fullmatch(token):
        return end
    raise _Refused(i, f"Scheme code naming {token!r}")


def _list(text: str, i: int, quoted: bool, depth: int) -> int:
    """Check the list at ``i`` (``text[i] == "("``); a call unless ``quoted``."""
    j, first = i + 1, True
    while True:
        while j < len(text) and text[j] in " \t\n\r\f\v":
            j += 1
        if j >= len(text):
            raise _Refused(i, "Scheme code cut off at the end of the file")
        if text[j] == ")":
            if first and not quoted:
                raise _Refused(i, "Scheme code '()'")
            return j + 1
        if first and not quoted:
            head, j = _token(text, j)
            if head not in SCHEME_CALLS and not _CALLBACK_CALL.fullmatch(head):
                raise _Refused(j - len(head), f"Scheme code calling {head[:30]!r}")
        else:
            j = _datum(text, j, quoted, depth + 1)
        first = False


def _raw_string(text: str, i: int, command: str) -> tuple[str, int]:
    """The ``"..."`` after ``\\include``, ``\\version``, ``\\sourcefilename`` (no escapes)."""
    m = re.compile(r'[ \t\n\r\f]*"([^"\\]*)"').match(text, i)
    if m is None:
        raise _Refused(i, f"\\{command} without a plain \"...\" string")
    return m.group(1), m.end()


def scan_lilypond(text: str, on_include=None) -> None:
    """Raise ``_Refused`` at the first construct of ``text`` that may run code.

    Parameters
    ----------
    text : str
        LilyPond source.
    on_include : callable, optional
        Called as ``on_include(name, pos)`` for every ``\\include "name"``.
    """
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%":
            ends = [k for k in (text.find("\n", i), text.find("\r", i)) if k >= 0]
            line_end = min(ends) if ends else n
            if i > 0 and text[i - 1] not in _WORD_BREAKS:
                # in lyrics and markup a word goes on through "%": LilyPond may read
                # the rest of the line as music, so it must hold nothing to run
                if text.startswith("%{", i) or any(ch in text[i + 1:line_end] for ch in '#$"\\%'):
                    raise _Refused(i, "a '%' inside a word (a lyric or markup word goes on "
                                      "through it) before code or a string")
                i = line_end
            elif text.startswith("%{", i):
                end = text.find("%}", i + 2)
                i = n if end < 0 else end + 2
            else:
                i = line_end
        elif c == '"':
            end = _string_end(text, i)
            if text[i + 1:end - 1] in FORBIDDEN_WORDS:
                raise _Refused(i, f"the paper variable {text[i + 1:end - 1]}")
            i = end
        elif c == "\\":
            nxt = text[i + 1:i + 2]
            if _LETTER.match(nxt):
                word = _WORD.match(text, i + 1)
                name, i = word.group(0), word.end()
                if name in ("include", "version", "sourcefilename"):
                    arg, i = _raw_string(text, i, name)
                    if name == "include" and on_include is not None:
                        on_include(arg, word.start() - 1)
                elif name in FORBIDDEN_COMMANDS:
                    raise _Refused(word.start() - 1, f"\\{name}, which {FORBIDDEN_COMMANDS[name]}")
            elif nxt in ('"', "#", "$", "%"):
                raise _Refused(i, f"a backslash before {nxt!r} outside a string")
            else:
                i += 2
        elif c in "#$":
            i = _datum(text, i + 1, False)
        elif _LETTER.match(c):
            word = _WORD.match(text, i)
            if word.group(0) in FORBIDDEN_WORDS:
                raise _Refused(i, f"the paper variable {word.group(0)}")
            i = word.end()
        else:
            i += 1


def _line(text: str, pos: int) -> int:
    return len(re.findall(r"\r\n|\r|\n", text[:pos])) + 1


def check_lilypond_text(text: str, label: str) -> None:
    """Raise :class:`UnsafeScoreError` if ``text`` (no includes allowed) may run code.

    For text the project generated from a score (``musicxml2ly`` output).
    """
    def no_include(name: str, pos: int) -> None:
        raise _Refused(pos, f"\\include \"{name}\"")

    try:
        scan_lilypond(text, no_include)
    except _Refused as err:
        raise UnsafeScoreError(f"{label}: line {_line(text, err.pos)}: refused {err.what}; "
                               f"{_FIX}") from None


def check_lilypond_file(path: Path) -> None:
    """Raise :class:`UnsafeScoreError` unless ``path`` and what it includes are only music.

    Includes are followed: a relative path inside the file's folder (no
    ``..``, no link out of it) is checked the same way; a name of
    :data:`LILYPOND_INCLUDES` not found there is LilyPond's own file.

    Parameters
    ----------
    path : Path
        A ``.ly`` file from outside the project.
    """
    root = Path(path).resolve().parent
    seen: set[Path] = set()

    def check(file: Path, shown: str) -> None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UnsafeScoreError(f"{shown}: cannot read it ({err}); give a UTF-8 text file") from None

        def include(name: str, pos: int) -> None:
            where = f"{shown}: line {_line(text, pos)}: refused \\include \"{name}\""
            parts = Path(name).parts
            if not name or Path(name).is_absolute() or name.startswith("~") or ".." in parts:
                raise UnsafeScoreError(f"{where} (outside the score's folder); {_FIX}")
            found = [c.resolve() for c in {root / name, file.parent / name} if c.is_file()]
            if not found:
                if name in LILYPOND_INCLUDES:
                    return
                raise UnsafeScoreError(f"{where} (not a file in the score's folder); {_FIX}")
            for target in found:
                if not target.is_relative_to(root):
                    raise UnsafeScoreError(f"{where} (links outside the score's folder); {_FIX}")
                if target not in seen:
                    seen.add(target)
                    if len(seen) > _MAX_INCLUDES:
                        raise UnsafeScoreError(f"{where} (more than {_MAX_INCLUDES} includes); {_FIX}")
                    check(target, str(target))

        try:
            scan_lilypond(text, include)
        except _Refused as err:
            raise UnsafeScoreError(f"{shown}: line {_line(text, err.pos)}: refused {err.what}; "
                                   f"{_FIX}") from None

    seen.add(Path(path).resolve())
    check(Path(path), str(path))
