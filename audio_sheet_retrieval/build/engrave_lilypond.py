"""Engraving with LilyPond, the way the MSMD data set was made.

MusicXML is converted with ``musicxml2ly`` (a user's ``.ly`` file is taken as
is). LilyPond then runs with point-and-click restricted to note events, so the
PDF carries one ``textedit://file.ly:line:char:column`` link rectangle per
notehead, and with ``event-listener.ly`` included, which writes one ``*.notes``
row per note event (onset in whole notes, MIDI pitch, duration,
``point-and-click char line``). Links and rows are joined on ``(line, char)``.
Onsets in whole notes become seconds through the tempo map of the MIDI file
LilyPond writes (a ``\\midi`` block is added when the score has none); that
MIDI file is also the piece's note events. LilyPond merges tied notes, and
plays no second note of a pitch that already sounds on the staff: heads
without a MIDI note of their own (tie continuations first) get
``onset_s=None``. musicxml2ly plays only ``<metronome>`` marks, so tempi
given for playback alone (``<sound tempo>``) become hidden ``\\tempo`` marks.

LilyPond runs whatever Scheme a ``.ly`` file holds and has no safe mode
(``-dsafe`` was removed in 2.23.12): a user's file, and musicxml2ly's
output for a user's MusicXML, are checked by
:mod:`audio_sheet_retrieval.build.lilypond_guard` before LilyPond sees them,
and the score's words are neutralized before musicxml2ly copies them. Every
run of LilyPond and musicxml2ly is also sandboxed
(:mod:`audio_sheet_retrieval.build.sandbox`: read-only file system but its
work folder, no network).

Pages are rasterized with PyMuPDF ``PAGE_WIDTH_PX`` wide. LilyPond's PDF has
no system boxes: staves are found on the page image (five equally spaced long
horizontal lines) and joined into systems where the system start bar links
them at their left edge.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import pymupdf

from audio_sheet_retrieval.build.engraving import (
    PAGE_WIDTH_PX,
    EngravedScore,
    Notehead,
    System,
)
from audio_sheet_retrieval.build.lilypond_guard import check_lilypond_file, check_lilypond_text
from audio_sheet_retrieval.build.midi import read_note_events, tick_to_seconds
from audio_sheet_retrieval.build.sandbox import sandboxed
from audio_sheet_retrieval.sheet.staff_detection import Staff

LILYPOND_TIMEOUT_S = 300
"""Wall-clock limit of one ``musicxml2ly`` or ``lilypond`` run, in seconds."""

DEFAULT_TEMPO = "4 = 120"
"""Initial MIDI tempo when the score sets none (verovio's default)."""

_MARKER = "%{ audio_sheet_retrieval: event listener %}"
# One line, so that the user's lines keep their numbers: the event listener,
# one *.notes file per Staff context, no tagline, chord names not played (they
# have no noteheads).
_PREAMBLE = " ".join((
    _MARKER,
    '\\include "event-listener.ly"',
    "#(define asr-staff-numbers (make-hash-table))",
    ("#(define (filename-from-staffname context)"
     " (let* ((staff (or (ly:context-find context 'Staff) context))"
     " (known (hashq-ref asr-staff-numbers staff)))"
     " (if (not known) (begin (set! known (hash-count (const #t) asr-staff-numbers))"
     " (hashq-set! asr-staff-numbers staff known)))"
     ' (format #f "~a-staff~a.notes" (ly:parser-output-name) known)))'),
    "\\header { tagline = ##f }",
    '\\midi { \\context { \\ChordNames \\remove "Note_performer" } } ',
))
_POINT_AND_CLICK = "-e(ly:set-option 'point-and-click '(note-event))"
_TEXTEDIT = re.compile(r"^textedit://(.*):(\d+):(\d+):(\d+)$")
_MOMENT = re.compile(r"^(-?[\d.]+(?:e-?\d+)?)(-[\d.]+(?:e-?\d+)?)?$")
_HOLLOW = ("1", "2", "breve", "longa", "maxima")
_STEM = "score"  # name of the .ly file inside the work folder
_INSTALL = "install LilyPond (e.g. `apt-get install lilypond`)"


@dataclass
class _NoteRow:
    """One ``note`` row of the event listener."""

    main: float
    """Onset in whole notes (for a grace note: of the main note it precedes)."""
    grace: float
    """Grace part of the onset in whole notes: 0, or negative for grace notes."""
    pitch: int
    duration: float
    """Written duration in whole notes."""
    filled: bool
    staff_key: int
    """Which Staff context (one ``*.notes`` file each) played the note."""
    line: int
    char: int
    tie_candidate: bool = False
    """A tied note of the same pitch ends where this one starts."""

    @property
    def moment(self) -> float:
        """Written onset in whole notes, grace part included."""
        return self.main + self.grace


# --------------------------------------------------------------------------
# Preparing and running LilyPond
# --------------------------------------------------------------------------


def _code_positions(text: str):
    """Yield ``(index, char)`` of every character outside comments and strings."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%":
            if text.startswith("%{", i):
                end = text.find("%}", i + 2)
                i = n if end < 0 else end + 2
            else:
                end = text.find("\n", i)
                i = n if end < 0 else end
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        yield i, c
        i += 1


def _score_blocks(text: str) -> list[tuple[int, int]]:
    """``(open_brace, close_brace)`` indices of every ``\\score { ... }`` block."""
    blocks, pending, depth, stack = [], False, 0, []
    for i, c in _code_positions(text):
        if c == "\\" and text.startswith("\\score", i) and not text[i + 6:i + 7].isalpha():
            pending = True
        elif c == "{":
            if pending:
                stack.append((depth, i))
                pending = False
            depth += 1
        elif c == "}":
            depth -= 1
            if stack and stack[-1][0] == depth:
                blocks.append((stack.pop()[1], i))
    return blocks


def _prepare_ly(text: str, label: str) -> str:
    """The ``.ly`` text LilyPond runs: event listener, tagline off, a ``\\midi`` block.

    The edit is idempotent and adds no line: the preamble goes right after
    the ``\\version`` string (or first), the ``\\midi`` block before the
    score's closing brace.

    Raises
    ------
    ValueError
        If the file has no ``\\score`` block or more than one.
    """
    text = re.sub(r"\\pointAndClickOff\b", "", text)
    blocks = _score_blocks(text)
    if len(blocks) != 1:
        what = "no \\score block" if not blocks else f"{len(blocks)} \\score blocks"
        raise ValueError(f"{label}: has {what}; write the music as one "
                         "\\score { ... \\layout {} \\midi {} }")
    start, end = blocks[0]
    body = "".join(c for i, c in _code_positions(text) if start < i < end)
    if "\\midi" not in body:
        add = "" if "\\layout" in body else "\\layout { } "
        add += f"\\midi {{ \\tempo {DEFAULT_TEMPO} }} "
        text = text[:end] + add + text[end:]
    if _MARKER not in text:
        version = re.search(r'\\version\s*"[^"]*"', text)
        at = version.end() if version else 0
        text = text[:at] + (" " if version else "") + _PREAMBLE + text[at:]
    return text


def _run(cmd: list[str], cwd: Path, label: str, tool: str, ly_name: str = "",
         readable: tuple[Path, ...] = ()) -> None:
    """Run ``cmd`` sandboxed in ``cwd``; a failure becomes a one-line ``ValueError``.

    ``ly_name`` replaces the work file's name in LilyPond's error message;
    ``readable`` are the folders besides ``cwd`` it may read (the score's own).
    """
    try:
        proc = subprocess.run(sandboxed(cmd, cwd, readable), cwd=cwd, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=LILYPOND_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ValueError(f"{label}: {tool} not found; {_INSTALL}") from None
    except subprocess.TimeoutExpired:
        raise ValueError(f"{label}: {tool} ran longer than {LILYPOND_TIMEOUT_S} s; "
                         "simplify or split the score") from None
    if proc.returncode != 0:
        errors = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "error" in ln.lower()]
        detail = errors[0].strip() if errors else f"exit status {proc.returncode}"
        if ly_name:
            detail = detail.replace(f"{_STEM}.ly", ly_name)
        raise ValueError(f"{label}: {tool} failed ({detail}); fix the score or "
                         "engrave it with verovio")


_VOICED = ("note", "forward", "direction")
_NEUTRAL = str.maketrans({'"': "\u201d", "\\": "/", "#": "\u266f", "$": "\uff04", "%": "\uff05",
                          "{": "(", "}": ")"})
"""Look-alikes for the characters that could end a LilyPond string or start code."""
_COLOR = re.compile(r"#[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?")


def _neutralize_text(root: ET.Element) -> None:
    """Replace, in every text and attribute value, what could break out of a LilyPond string.

    musicxml2ly copies words, lyrics and titles into its output, some of
    them without escaping (``<words>x" #(system "...") "</words>`` becomes
    code); after this no text of the score can. Colours (``#FF0000``) stay.
    """
    for el in root.iter():
        if el.text:
            el.text = el.text.translate(_NEUTRAL)
        if el.tail:
            el.tail = el.tail.translate(_NEUTRAL)
        for key, value in el.attrib.items():
            if not _COLOR.fullmatch(value):
                el.attrib[key] = value.translate(_NEUTRAL)


def _renumber_voices(root: ET.Element) -> None:
    """Make no voice number of a part used on two staves.

    musicxml2ly appends the notes of a voice number that comes back on a
    second staff (as in music21's grand-staff reductions) after those of the
    first staff, so the staves would play one after the other. Voices are
    renumbered 1, 2, ... by (staff, voice) where a number is shared.
    """
    voiced = []  # (element's <voice>, part id, staff, voice)
    for part in root.iter("part"):
        for el in part.iter():
            voice = el.find("voice") if el.tag in _VOICED else None
            if voice is not None and (voice.text or "").strip():
                staff = (el.findtext("staff") or "1").strip()
                voiced.append((voice, part.get("id"), staff, voice.text.strip()))
    staves_of = defaultdict(set)
    for _, part_id, staff, number in voiced:
        staves_of[(part_id, number)].add(staff)
    if all(len(staves) == 1 for staves in staves_of.values()):
        return

    def as_number(text: str) -> tuple[int, str]:
        return (int(text) if text.isdigit() else 0, text)

    renumber, used = {}, defaultdict(int)  # (part, staff, voice) -> new voice
    for key in sorted({(p, st, v) for _, p, st, v in voiced},
                      key=lambda k: (k[0], as_number(k[1]), as_number(k[2]))):
        used[key[0]] += 1
        renumber[key] = str(used[key[0]])
    for voice, part_id, staff, number in voiced:
        voice.text = renumber[(part_id, staff, number)]


def _playback_tempi(root: ET.Element, token: str) -> None:
    """Give every tempo that is only played (``<sound tempo>``) a metronome mark musicxml2ly reads.

    musicxml2ly turns ``<metronome>`` marks into ``\\tempo`` but plays
    ``<sound tempo>`` alone at most as the initial tempo (and only with
    ``--midi``): a chorale marked for 96 bpm played at 120. Each such tempo
    gets a metronome mark labelled ``token``, whose ``\\tempo`` is then
    hidden again in the LilyPond text (:func:`_hide_playback_tempi`).
    """
    for parent in list(root.iter()):
        for k, sound in reversed(list(enumerate(parent))):
            tempo = sound.get("tempo") if sound.tag == "sound" else None
            if tempo is None or parent.tag not in ("direction", "measure"):
                continue
            try:
                bpm = round(float(tempo))
            except ValueError:
                continue
            if bpm <= 0 or (parent.tag == "direction" and parent.find(".//metronome") is not None):
                continue
            mark = ET.fromstring(
                f"<direction-type><words>{token}</words><metronome><beat-unit>quarter</beat-unit>"
                f"<per-minute>{bpm}</per-minute></metronome></direction-type>")
            if parent.tag == "direction":
                parent.insert(len(parent.findall("direction-type")), mark)
            else:  # a <sound> of the measure itself: a direction of its own at its place
                direction = ET.Element("direction")
                direction.append(mark)
                parent.insert(k, direction)


def _hide_playback_tempi(text: str, token: str) -> str:
    """``\\tempo "token" 4=96`` (see :func:`_playback_tempi`) as a tempo that is not printed."""
    return re.sub(r'\\tempo\s*"' + re.escape(token) + r'"\s*',
                  r"\\once \\set Score.tempoHideNote = ##t \\tempo ", text)


def _prepare_musicxml(musicxml: str, label: str, tempo_token: str = "") -> str:
    """MusicXML for musicxml2ly: text neutralized (:func:`_neutralize_text`), voices renumbered,
    played tempi made readable (:func:`_playback_tempi`, with ``tempo_token``).

    Raises
    ------
    ValueError
        If the text is not well-formed XML.
    """
    try:
        root = ET.fromstring(musicxml)
    except ET.ParseError as err:
        raise ValueError(f"{label}: not well-formed MusicXML ({err}); fix or re-export it") from None
    _neutralize_text(root)
    _renumber_voices(root)
    if tempo_token:
        _playback_tempi(root, tempo_token)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _musicxml2ly_definitions() -> tuple[str, ...]:
    """The Scheme definitions musicxml2ly itself may write into its output, from its source."""
    exe = shutil.which("musicxml2ly")
    try:
        code = Path(exe).read_text(encoding="utf-8") if exe else ""
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(d for d in re.findall(r'"""(.*?)"""', code, re.S) if "#(define" in d)


def _musicxml_to_ly(musicxml: str, workdir: Path, label: str) -> str:
    """Convert MusicXML text to LilyPond text with ``musicxml2ly``.

    The score's text cannot become code (:func:`_prepare_musicxml`), and
    the output is checked like a user's ``.ly`` file all the same
    (musicxml2ly's own Scheme definitions excepted).
    """
    xml_path = workdir / "input.musicxml"
    token = f"asr-tempo-{uuid.uuid4().hex}"  # no score text can forge it
    xml_path.write_text(_prepare_musicxml(musicxml, label, token), encoding="utf-8")
    _run(["musicxml2ly", "-o", "converted.ly", xml_path.name],
         workdir, label, "musicxml2ly")
    text = _hide_playback_tempi((workdir / "converted.ly").read_text(encoding="utf-8"), token)
    own = text
    for definition in _musicxml2ly_definitions():
        own = own.replace(definition, "")
    check_lilypond_text(own, f"{label} (converted by musicxml2ly)")
    return text


def _check_tools(need_musicxml2ly: bool, label: str) -> None:
    for tool in ("lilypond", "musicxml2ly") if need_musicxml2ly else ("lilypond",):
        if shutil.which(tool) is None:
            raise ValueError(f"{label}: {tool} not found; {_INSTALL}")


# --------------------------------------------------------------------------
# Reading LilyPond's output
# --------------------------------------------------------------------------


def _parse_moment(text: str) -> tuple[float, float]:
    """Main and grace part, in whole notes, of an event-listener moment.

    ``"0.25"`` is ``(0.25, 0.0)``; a grace note's ``"0.25-0.125"`` is ``(0.25, -0.125)``.
    """
    m = _MOMENT.match(text)
    if m is None:
        raise ValueError(f"unreadable moment {text!r}")
    return float(m.group(1)), float(m.group(2)) if m.group(2) else 0.0


def _is_filled(duration: str) -> bool:
    """Black head for a LilyPond duration string (``4``, ``8.``, ``\\breve``, ``2*2/3``)."""
    m = re.match(r"\\?(\w+)", duration)
    return not (m and m.group(1) in _HOLLOW)


def _read_note_rows(workdir: Path) -> list[_NoteRow]:
    """All ``note`` rows of the event listener's ``*.notes`` files, with tie candidates."""
    rows: list[_NoteRow] = []
    for path in sorted(workdir.glob(f"{_STEM}-staff*.notes")):
        staff_key = int(path.stem.rsplit("staff", 1)[1])
        tie_moments = set()
        staff_rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            f = line.split("\t")
            if len(f) >= 2 and f[1] == "tie":
                tie_moments.add(round(sum(_parse_moment(f[0])), 6))
            elif len(f) >= 6 and f[1] == "note" and f[5].startswith("point-and-click"):
                _, char, lineno = f[5].split()
                main, grace = _parse_moment(f[0])
                staff_rows.append(_NoteRow(
                    main=main, grace=grace, pitch=int(f[2]), duration=float(f[4]),
                    filled=_is_filled(f[3]), staff_key=staff_key, line=int(lineno),
                    char=int(char)))
        tied_ends = {(round(r.moment + r.duration, 6), r.pitch) for r in staff_rows
                     if round(r.moment, 6) in tie_moments}
        for r in staff_rows:
            r.tie_candidate = (round(r.moment, 6), r.pitch) in tied_ends
        rows.extend(staff_rows)
    return rows


def _read_links(doc: pymupdf.Document, ly_name: str,
                scales: list[float]) -> dict[tuple[int, int], tuple]:
    """``{(line, char): (page, top, left, height, width)}`` of the notehead links.

    Rectangles are converted from PDF points to page pixels with the page's
    scale (pixels per point).
    """
    links = {}
    for page_no, (page, scale) in enumerate(zip(doc, scales)):
        for link in page.get_links():
            m = _TEXTEDIT.match(link.get("uri") or "")
            if m is None or Path(m.group(1)).name != ly_name:
                continue
            r = link["from"]
            links.setdefault((int(m.group(2)), int(m.group(3))), (
                page_no, r.y0 * scale, r.x0 * scale, r.height * scale, r.width * scale))
    return links


def _rasterize(page: pymupdf.Page) -> tuple[np.ndarray, float]:
    """Grayscale uint8 image of ``page`` ``PAGE_WIDTH_PX`` wide, and pixels per point."""
    scale = PAGE_WIDTH_PX / page.rect.width
    pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), colorspace=pymupdf.csGRAY,
                          alpha=False)
    img = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.stride)
    img = img[:, :pix.width]
    if img.shape[1] > PAGE_WIDTH_PX:
        img = img[:, :PAGE_WIDTH_PX]
    elif img.shape[1] < PAGE_WIDTH_PX:
        img = np.pad(img, ((0, 0), (0, PAGE_WIDTH_PX - img.shape[1])), constant_values=255)
    return np.array(img, dtype=np.uint8, order="C"), scale  # a writable copy


def _note_on_ticks(mid: mido.MidiFile, pitch: int) -> list[int]:
    """Absolute ticks of every sounding note-on of ``pitch``, all tracks, sorted."""
    ticks = []
    for track in mid.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0 and msg.note == pitch:
                ticks.append(now)
    return sorted(ticks)


def _whole_notes_to_seconds(midi_path: Path,
                            rows: list[_NoteRow]) -> Callable[[float], float]:
    """Map onsets in whole notes to seconds with the tempo map of LilyPond's MIDI file.

    Grace notes that open the piece make LilyPond delay its whole MIDI
    rendering by their squeezed length; the delay is read off the first main
    note (its last note-on within the graces' written span).
    """
    mid = mido.MidiFile(str(midi_path))
    to_s = tick_to_seconds(mid)
    ticks_per_whole = 4 * mid.ticks_per_beat
    shift = 0.0
    if any(r.moment < 0 for r in rows):
        first = min((r for r in rows if not r.grace), key=lambda r: r.main, default=None)
        lead = -min(r.moment for r in rows) * ticks_per_whole
        if first is not None:
            start = first.main * ticks_per_whole
            near = [t for t in _note_on_ticks(mid, first.pitch) if start <= t <= start + lead]
            shift = near[-1] - start if near else 0.0
    return lambda wholes: to_s(max(wholes * ticks_per_whole + shift, 0.0))


def _assign_onsets(rows: list[_NoteRow], to_seconds: Callable[[float], float],
                   note_events: np.ndarray, tol_s: float = 0.005) -> list[float | None]:
    """Onset of each row, in seconds, snapped to its own MIDI note; ``None`` without one.

    Rows and MIDI notes are matched one to one on pitch and onset, within
    ``tol_s`` seconds of the written onset. Where a pitch and onset have more
    rows than MIDI notes (LilyPond's MIDI merges tied notes, and unisons of
    one staff), tie candidates go without first. LilyPond plays grace notes
    in a squeezed span before their main note: after all other rows, they
    take the free MIDI note of their pitch nearest to the main note between
    the written grace onset and the main note.
    """
    free: dict[int, list[float]] = defaultdict(list)  # pitch -> unclaimed MIDI onsets
    for onset, pitch in note_events[:, :2]:
        free[int(pitch)].append(float(onset))
    out: list[float | None] = [None] * len(rows)
    windows = []
    for r in rows:
        main_s = to_seconds(r.main)
        start_s = to_seconds(r.moment) if r.grace else main_s
        windows.append((start_s - tol_s, main_s + tol_s, main_s))
    order = sorted(range(len(rows)),  # exact windows first, then grace notes
                   key=lambda k: (rows[k].tie_candidate, rows[k].grace != 0, windows[k][2]))
    for k in order:
        lo, hi, target = windows[k]
        onsets = free[rows[k].pitch]
        inside = [i for i, t in enumerate(onsets) if lo <= t <= hi]
        if inside:
            out[k] = onsets.pop(min(inside, key=lambda i: abs(onsets[i] - target)))
    return out


# --------------------------------------------------------------------------
# Staves and systems on the page image
# --------------------------------------------------------------------------


def _longest_runs(dark: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Length, start and end column of the longest dark run of every row."""
    h, w = dark.shape
    length, start = np.zeros(h, int), np.zeros(h, int)
    padded = np.zeros((h, w + 2), bool)
    padded[:, 1:-1] = dark
    edges = np.diff(padded.astype(np.int8), axis=1)
    for r in np.flatnonzero(dark.any(axis=1)):
        starts, ends = np.flatnonzero(edges[r] == 1), np.flatnonzero(edges[r] == -1)
        k = int(np.argmax(ends - starts))
        length[r], start[r] = ends[k] - starts[k], starts[k]
    return length, start, start + length


def _line_candidates(img: np.ndarray,
                     min_len_frac: float = 0.06) -> list[tuple[float, int, int, int]]:
    """Long horizontal lines: (row, left, right, length) in page pixels, top to bottom.

    Rows whose longest dark run (gray < 200) is at least ``min_len_frac`` of
    the page width are grouped when consecutive; a line is the
    darkness-weighted centroid of the rows of its group that hold the
    group's longest run (a beam touching a staff line does not move it).
    """
    length, start, end = _longest_runs(img < 200)
    rows = np.flatnonzero(length >= min_len_frac * img.shape[1])
    darkness = (255.0 - img).sum(axis=1)
    lines = []
    for group in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
        if group.size == 0:
            continue
        group = group[length[group] >= 0.9 * length[group].max()]
        weights = darkness[group]
        lines.append((float((group * weights).sum() / weights.sum()),
                      int(np.median(start[group])), int(np.median(end[group])),
                      int(length[group].max())))
    return lines


def _find_staves(img: np.ndarray) -> list[Staff]:
    """Staves of a clean page: five equally spaced long lines of equal extent."""
    lines = _line_candidates(img)
    staves, used = [], set()
    for i, (y0, _, _, length) in enumerate(lines):
        if i in used:
            continue
        for j in range(i + 1, min(i + 4, len(lines))):
            gap = lines[j][0] - y0
            if not 2.0 <= gap <= 40.0:
                continue
            picked = [i]
            for _ in range(4):
                want = lines[picked[-1]][0] + gap
                near = [m for m in range(picked[-1] + 1, min(picked[-1] + 12, len(lines)))
                        if m not in used
                        and abs(lines[m][0] - want) <= max(1.5, 0.2 * gap)
                        and abs(lines[m][3] - length) <= 0.1 * length]
                if not near:
                    break
                picked.append(min(near, key=lambda m: abs(lines[m][0] - want)))
                gap = (lines[picked[-1]][0] - y0) / (len(picked) - 1)
            if len(picked) == 5:
                used.update(picked)
                staves.append(Staff(lines=tuple(lines[m][0] for m in picked),
                                    left=int(np.median([lines[m][1] for m in picked])),
                                    right=int(np.median([lines[m][2] for m in picked]))))
                break
    return sorted(staves, key=lambda s: s.top)


def _joined(img: np.ndarray, upper: Staff, lower: Staff) -> bool:
    """Whether a vertical line at the staves' left edge joins them (system start bar)."""
    left = min(upper.left, lower.left)
    if abs(upper.left - lower.left) > 3:
        return False
    r0, r1 = int(np.ceil(upper.bottom)) + 2, int(np.floor(lower.top)) - 1
    if r1 <= r0:
        return True
    window = img[r0:r1, max(left - 2, 0):left + 3]
    return bool((window.min(axis=1) < 200).mean() >= 0.9)


def _group_systems(img: np.ndarray, staves: list[Staff]) -> list[list[Staff]]:
    """Staves joined at their left edge, top to bottom."""
    systems: list[list[Staff]] = []
    for staff in staves:
        if systems and _joined(img, systems[-1][-1], staff):
            systems[-1].append(staff)
        else:
            systems.append([staff])
    return systems


def _distance(row: float, staff: Staff) -> float:
    """Vertical distance from ``row`` to the staff's span (0 inside), in pixels."""
    return max(staff.top - row, row - staff.bottom, 0.0)


def _system_index(head: Notehead, found: list[tuple[int, list[Staff]]]) -> int:
    """Index into ``found`` of the system holding the staff nearest to the head (-1: none)."""
    best, best_d = -1, np.inf
    for idx, (page, staves) in enumerate(found):
        if page == head.page:
            d = min(_distance(head.center[0], s) for s in staves)
            if d < best_d:
                best, best_d = idx, d
    return best


def _layout(pages: list[np.ndarray], heads: list[Notehead],
            staff_keys: list[int]) -> list[System]:
    """Systems of every page, sorted; sets each head's ``staff`` (1-based, in its system).

    A head goes to the system of its nearest staff. All heads of one LilyPond
    Staff context (``staff_keys``) within a system get the staff nearest to
    their median row, so notes on ledger lines between staves stay on their
    own staff. A system's top and bottom enclose its staff lines and heads.
    """
    found = [(page_no, group) for page_no, img in enumerate(pages)
             for group in _group_systems(img, _find_staves(img))]
    system_of = [_system_index(head, found) for head in heads]
    members: dict[tuple[int, int], list[Notehead]] = defaultdict(list)
    for head, sys_idx, key in zip(heads, system_of, staff_keys):
        if sys_idx >= 0:
            members[(sys_idx, key)].append(head)
    for (sys_idx, _), group in members.items():
        row = float(np.median([h.center[0] for h in group]))
        staff_no = 1 + int(np.argmin([_distance(row, s) for s in found[sys_idx][1]]))
        for head in group:
            head.staff = staff_no
    systems = []
    for sys_idx, (page_no, staves) in enumerate(found):
        own = [h for h, k in zip(heads, system_of) if k == sys_idx]
        systems.append(System(
            page=page_no,
            top=min([staves[0].top] + [h.top for h in own]),
            left=float(min(s.left for s in staves)),
            bottom=max([staves[-1].bottom] + [h.top + h.height for h in own]),
            right=float(max(s.right for s in staves)),
            staff_lines=[y for s in staves for y in s.lines]))
    return sorted(systems, key=lambda s: (s.page, s.top))


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def _label(source: str | Path, is_lilypond: bool) -> str:
    """How error messages name the input: its path, or the MusicXML title."""
    if is_lilypond or isinstance(source, Path):
        return str(source)
    title = re.search(r"<(?:work-title|movement-title)>([^<]*)<", source)
    return f"MusicXML score {title.group(1).strip()!r}" if title else "MusicXML score"


def _read_text(path: Path, label: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{label}: cannot read it ({err}); give a text file") from None


def _run_lilypond(workdir: Path, ly_text: str, include: Path | None, label: str,
                  shown_name: str) -> tuple[Path, Path]:
    """Run LilyPond on ``ly_text`` in ``workdir``; the PDF and the MIDI file it wrote."""
    (workdir / f"{_STEM}.ly").write_text(ly_text, encoding="utf-8")
    cmd = ["lilypond", _POINT_AND_CLICK, "--pdf"]
    if include is not None:
        cmd.append(f"--include={include}")
    _run([*cmd, f"{_STEM}.ly"], workdir, label, "lilypond", shown_name,
         readable=(include,) if include is not None else ())
    pdf, midi = workdir / f"{_STEM}.pdf", sorted(workdir.glob(f"{_STEM}.mid*"))
    if not pdf.exists() or not midi:
        raise ValueError(f"{label}: lilypond wrote no PDF or no MIDI file; "
                         "give the \\score a \\layout and a \\midi block")
    return pdf, midi[0]


def _render(pdf: Path) -> tuple[list[np.ndarray], dict]:
    """Page images of the PDF and its notehead links (see :func:`_read_links`)."""
    with pymupdf.open(pdf) as doc:
        rendered = [_rasterize(page) for page in doc]
        links = _read_links(doc, pdf.with_suffix(".ly").name, [scale for _, scale in rendered])
    return [img for img, _ in rendered], links


def engrave(source: str | Path, *, is_lilypond: bool = False) -> EngravedScore:
    """Engrave a score with LilyPond.

    Parameters
    ----------
    source : str or Path
        MusicXML text (a ``Path`` is read as a MusicXML file), or with
        ``is_lilypond`` the path of a ``.ly`` file with one ``\\score`` block
        (its folder is on LilyPond's include path).
    is_lilypond : bool
        ``source`` is a LilyPond file rather than MusicXML.

    Returns
    -------
    EngravedScore
        Pages rasterized ``PAGE_WIDTH_PX`` wide, noteheads (link rectangles)
        in page pixels with onsets in seconds from LilyPond's MIDI file,
        systems found on the page images, that MIDI file's note events;
        ``source`` is the ``.ly`` text that was run (a head's ``ref`` is its
        ``line:char`` there).

    Raises
    ------
    UnsafeScoreError
        If the input would run Scheme code or use other files (a
        ``ValueError`` and an ``AsrError``; names the file and line).
    ValueError
        If LilyPond or musicxml2ly is missing, fails or times out, the input
        cannot be read, or the score has no engraved notes.
    """
    label = _label(source, is_lilypond)
    _check_tools(not is_lilypond, label)
    with tempfile.TemporaryDirectory(prefix="engrave_lilypond_") as tmp:
        workdir = Path(tmp)
        if is_lilypond:
            check_lilypond_file(Path(source))  # LilyPond has no safe mode: refuse any code
            text, include = _read_text(Path(source), label), Path(source).resolve().parent
        else:
            xml = _read_text(source, label) if isinstance(source, Path) else source
            text, include = _musicxml_to_ly(xml, workdir, label), None
        ly_text = _prepare_ly(text, label)
        pdf, midi = _run_lilypond(workdir, ly_text, include, label,
                                  Path(source).name if is_lilypond else "musicxml2ly output")
        note_events = read_note_events(midi)
        rows = _read_note_rows(workdir)
        to_seconds = _whole_notes_to_seconds(midi, rows)
        pages, links = _render(pdf)
    rows = [r for r in rows if (r.line, r.char) in links]
    if not rows:
        raise ValueError(f"{label}: lilypond engraved no notes")
    heads = [Notehead(*links[(r.line, r.char)], pitch=r.pitch, onset_s=onset, filled=r.filled,
                      ref=f"{r.line}:{r.char}")
             for r, onset in zip(rows, _assign_onsets(rows, to_seconds, note_events))]
    systems = _layout(pages, heads, [r.staff_key for r in rows])
    order = sorted(range(len(heads)), key=lambda k: (heads[k].page, heads[k].top, heads[k].left))
    return EngravedScore(pages=pages, noteheads=[heads[k] for k in order], systems=systems,
                         note_events=note_events, engraver="lilypond", source=ly_text,
                         source_suffix=".ly")
