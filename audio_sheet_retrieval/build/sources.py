"""Score sources: music21's bundled corpus and the user's own files.

A *piece spec* is a corpus name (``bach/bwv846``), a glob over corpus names
(``'bach/bwv2*'``) or a path to a MusicXML / ``.mxl`` / kern / ABC / LilyPond
file. Four-part scores (Bach chorales, string quartets) are reduced to a piano
grand staff: the upper two parts share the treble staff, the lower two the
bass staff, each part a voice of its own.
"""

from __future__ import annotations

import bisect
import copy
import fnmatch
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".ly")

SOLO_PIANO = (
    "bach/bwv846", "joplin/maple_leaf_rag", "chopin/mazurka06-2", "cpebach/h186",
    "mozart/k545/movement1_exposition", "schoenberg/opus19/movement2",
    "schoenberg/opus19/movement6", "schumann_clara/polonaise_op1n1",
    "schumann_clara/polonaise_op1n2", "schumann_clara/polonaise_op1n3",
    "schumann_clara/polonaise_op1n4",
)
"""Solo-piano works of music21's corpus (grand staff, checked by parsing)."""

QUARTET_GLOBS = ("beethoven/opus18no*/movement*", "haydn/opus*/movement*",
                 "mozart/k*/movement*", "schumann_robert/opus41no1/movement*")
"""String quartets of the corpus, reduced to piano with ``--quartets``."""


@dataclass(frozen=True)
class PieceSource:
    """Where one piece comes from.

    Attributes
    ----------
    name : str
        MSMD-style piece name, ``<composer>__<work>[__<part>]``.
    path : Path
        The score file.
    reduce : bool
        Reduce four parts to a grand staff.
    """

    name: str
    path: Path
    reduce: bool = False

    @property
    def is_lilypond(self) -> bool:
        return self.path.suffix == ".ly"


def corpus_root() -> Path:
    """Folder of music21's bundled corpus."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def corpus_names() -> dict[str, Path]:
    """Every score of the corpus by name (relative path without suffix)."""
    root = corpus_root()
    names = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in SCORE_SUFFIXES and path.is_file():
            name = path.relative_to(root).with_suffix("").as_posix()
            names.setdefault(name, path)  # an .mxl beside a .krn of the same work: first wins
    return names


_TRANSLIT = {
    # Cyrillic
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "є": "ie", "ж": "zh",
    "з": "z", "и": "i", "і": "i", "ї": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch",
    "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
    # Greek
    "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i",
    "κ": "k", "λ": "l", "μ": "m", "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s",
    "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps", "ω": "o",
    # Latin letters that Unicode does not decompose
    "ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th",
}
_TRANSLIT_TABLE = str.maketrans({**_TRANSLIT, **{k.upper(): v.capitalize() for k, v in _TRANSLIT.items()
                                                 if len(k.upper()) == 1 and k.upper() != k}})


def _slug(text: str) -> str:
    """ASCII letters, digits and ``-`` of ``text``: accents dropped, Cyrillic and
    Greek transliterated, every run of other characters one ``-``."""
    text = unicodedata.normalize("NFKD", text).translate(_TRANSLIT_TABLE)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def piece_name(spec: str, exact: bool = False) -> str:
    """MSMD-style piece name of a corpus name or a file stem (``bach__bwv1-6``).

    Parameters
    ----------
    spec : str
        A corpus name (``bach/bwv1.6``; its folders become ``__``) or a file stem.
    exact : bool
        Keep different specs apart: when the name is not ``spec`` itself (spaces,
        underscores, accents or other scripts were replaced), append ``-`` and 8
        hex digits of the SHA-1 of ``spec`` (``a b`` -> ``a-b-<hash>``, while
        ``a-b`` stays ``a-b``). Used for file stems; corpus names are distinct as
        they are.

    Returns
    -------
    str
        A non-empty name of ASCII letters, digits, ``-`` and ``_`` that starts and
        ends with a letter or digit (:data:`~audio_sheet_retrieval.data.layout.PIECE_NAME`);
        ``piece-<hash>`` when nothing of ``spec`` is left.
    """
    name = "__".join(p for p in (_slug(part) for part in spec.split("/")) if p)
    if not name:
        return f"piece-{_short_hash(spec)}"
    if exact and name != spec:
        return f"{name}-{_short_hash(spec)}"
    return name


def _is_chorale(name: str) -> bool:
    return name.startswith("bach/") and name not in SOLO_PIANO


def _needs_reduction(name: str) -> bool:
    """Four-part corpus scores (chorales, quartets) become a piano grand staff.

    The solo-piano works are never reduced, even where their names match a
    quartet pattern (``mozart/k545/...``); :func:`load_musicxml` also checks
    the score itself before reducing it.
    """
    if name in SOLO_PIANO:
        return False
    return _is_chorale(name) or any(fnmatch.fnmatch(name, g) for g in QUARTET_GLOBS)


def resolve(specs: list[str]) -> list[PieceSource]:
    """Piece sources of corpus names, globs and file paths, with distinct names.

    A file gets the name of its stem (:func:`piece_name` with ``exact=True``); a
    spec given twice (or matched twice) counts once. Different files that would
    share a name (``x/prelude.xml`` and ``y/prelude.xml``) are each named
    ``<name>-<hash of the file's path>``.

    Raises
    ------
    ValueError
        For a spec that matches nothing (names the spec and the fix).
    """
    corpus = None
    found: dict[Path, PieceSource] = {}
    for spec in specs:
        path = Path(spec)
        if path.suffix in SCORE_SUFFIXES and (path.is_file() or "/" not in spec or path.exists()):
            if not path.is_file():
                raise ValueError(f"{spec}: score file not found; check the path")
            path = path.resolve()
            found.setdefault(path, PieceSource(piece_name(path.stem, exact=True), path, reduce=False))
            continue
        corpus = corpus if corpus is not None else corpus_names()
        matches = fnmatch.filter(corpus, spec) if any(c in spec for c in "*?[") else (
            [spec] if spec in corpus else [])
        if not matches:
            raise ValueError(f"{spec}: no such score in music21's corpus or on disk; "
                             "give a corpus name like bach/bwv846 or a score file path")
        for name in matches:
            found.setdefault(corpus[name], PieceSource(piece_name(name), corpus[name],
                                                       reduce=_needs_reduction(name)))
    by_name: dict[str, list[PieceSource]] = {}
    for src in found.values():
        by_name.setdefault(src.name, []).append(src)
    out = []
    for name, group in by_name.items():
        if len(group) == 1:
            out.extend(group)
        else:
            out.extend(PieceSource(f"{name}-{_short_hash(str(s.path))}", s.path, s.reduce)
                       for s in group)
    return out


def default_specs() -> list[str]:
    """The default collection: corpus solo piano works plus the Bach chorales."""
    return list(SOLO_PIANO) + sorted(n for n in corpus_names() if _is_chorale(n))


def demo_specs(n: int = 40, seed: int = 0) -> list[str]:
    """A small reproducible selection of the default collection, for demos.

    Two solo-piano works and ``n - 2`` Bach chorales drawn with ``seed``.
    """
    import numpy as np

    chorales = sorted(name for name in default_specs() if _is_chorale(name))
    picked = np.random.default_rng(seed).choice(len(chorales), size=min(n - 2, len(chorales)),
                                                replace=False)
    return ["bach/bwv846", "mozart/k545/movement1_exposition"] + sorted(chorales[i] for i in picked)


def quartet_specs() -> list[str]:
    """Corpus names of the string quartet movements."""
    names = corpus_names()
    return sorted({n for g in QUARTET_GLOBS for n in fnmatch.filter(names, g)} - set(SOLO_PIANO))


# --- music21 side -------------------------------------------------------------------------

_KEYBOARD_NAMES = re.compile(r"piano|keyboard|klavier|cembalo|harpsichord|organ|orgel|celesta|"
                             r"continuo", re.IGNORECASE)
_VOICE_NAMES = ("soprano", "alto", "tenor", "bass")


def parse_score(path: Path):
    """A score file read by music21, never from music21's parse cache.

    music21 keeps pickles of parsed files in a shared temporary folder and
    loads one when it is newer than the file: a pickle planted there runs
    code, and a score replaced by a file with an older modification time
    yields the old parse. ``forceSource`` reads the file itself and writes
    no pickle. An opus gives its first score.

    Raises
    ------
    ValueError
        When music21 cannot read the file.
    """
    from music21 import converter, stream

    try:
        score = converter.parse(str(path), forceSource=True)
    except Exception as err:  # music21 raises many types on bad input
        raise ValueError(f"music21 cannot read it ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    return score


def mark_partial_measures(score) -> int:
    """Mark a pickup and the second half of a bar split by a repeat sign as implicit.

    Such a measure is shorter than its time signature; MusicXML says
    ``implicit="yes"`` so that engravers neither number it nor fill it up
    to a full bar (musicxml2ly filled BWV 265's pickup and split bar with
    seven quarter notes of silence, and shifted its bar lines). Returns how
    many measures were marked.
    """
    from music21 import stream

    marked = 0
    for part in score.parts:
        measures = list(part.getElementsByClass("Measure"))
        for k, m in enumerate(measures):
            length, bar = float(m.duration.quarterLength), float(m.barDuration.quarterLength)
            if length >= bar - 1e-9:
                continue
            prev = measures[k - 1] if k else None
            split = prev is not None and abs(float(prev.duration.quarterLength) + length - bar) < 1e-9
            if k == 0 or split:
                m.showNumber = stream.enums.ShowNumber.NEVER
                if split and k:  # numbered as the bar it completes (4, 4a), not as a new pickup (0)
                    m.number, m.numberSuffix = prev.number, (prev.numberSuffix or "") + "a"
                marked += 1
    return marked


def _label(part) -> str:
    return str(part.partName or (part.id if isinstance(part.id, str) else "") or "").lower()


def _is_keyboard(part) -> bool:
    """A keyboard part: one staff of a multi-staff part (a grand staff), or named so.

    Instruments are not asked: corpus chorales give every voice a
    harpsichord for playback.
    """
    from music21 import stream

    return isinstance(part, stream.PartStaff) or bool(_KEYBOARD_NAMES.search(_label(part)))


def pick_four_parts(parts: list) -> list:
    """The four parts a piano reduction takes: S, A, T, B by name, else the first four.

    Keyboard parts (a continuo, a piano) are never taken.

    Raises
    ------
    ValueError
        For fewer than four parts that are not keyboard parts.
    """
    melodic = [p for p in parts if not _is_keyboard(p)]
    by_name = {}
    for part in melodic:
        for voice in _VOICE_NAMES:
            if _label(part).startswith(voice) and voice not in by_name:
                by_name[voice] = part
    if len(by_name) == 4:
        return [by_name[v] for v in _VOICE_NAMES]
    if len(melodic) >= 4:
        return melodic[:4]
    raise ValueError(f"has {len(melodic)} non-keyboard parts; four are needed for the piano reduction")


def is_ensemble_score(score) -> bool:
    """Whether a score is for four or more (non-keyboard) parts, so it needs a piano reduction.

    A piano score (a grand staff, or parts named for a keyboard) is not,
    whatever its corpus name: it is engraved as written.
    """
    return sum(not _is_keyboard(p) for p in score.parts) >= 4


def _lanes(elements: list, bar_end: float) -> list[list]:
    """Split a voice's notes and rests into sequences without overlaps.

    Notes open a new lane where they overlap a note of every lane (two
    voices stacked into one); rests go to the first lane they do not
    overlap and open none (except in a voice of rests only): a rest that
    fits nowhere is dropped, one that runs past ``bar_end`` (quarter notes
    from the measure's start) is cut there.
    """
    lanes: list[list] = []
    spans: list[list[tuple[float, float]]] = []

    def place(el, start: float, end: float, may_open: bool) -> None:
        free = (k for k, taken in enumerate(spans)
                if all(start >= b - 1e-9 or end <= a + 1e-9 for a, b in taken))
        k = next(free, None)
        if k is None:
            if not may_open:
                return
            lanes.append([])
            spans.append([])
            k = len(lanes) - 1
        lanes[k].append(el)
        spans[k].append((start, end))

    for el in sorted((e for e in elements if not e.isRest), key=lambda e: e.offset):
        place(el, float(el.offset), float(el.offset + el.quarterLength), may_open=True)
    for rest in sorted((e for e in elements if e.isRest), key=lambda e: e.offset):
        start = float(rest.offset)
        length = min(float(rest.quarterLength), bar_end - start)
        if length <= 1e-9:
            continue
        if length < float(rest.quarterLength):
            rest = copy.deepcopy(rest)
            rest.quarterLength = length
        place(rest, start, start + length, may_open=not lanes)
    return [sorted(lane, key=lambda e: e.offset) for lane in lanes]


def _bar_end(measure) -> float:
    """Where a measure's music ends, in quarter notes from its start."""
    nominal = float(measure.barDuration.quarterLength - measure.paddingLeft - measure.paddingRight)
    notes = [float(n.offset + n.quarterLength) for n in measure.recurse().notes]
    return max([nominal] + notes)


def _voice_groups(measure) -> dict[str, list]:
    """Printed notes and rests of a measure by voice (notes outside voices count as voice 1).

    Hidden rests only hold a place; the export writes what a voice needs.
    """
    groups: dict[str, list] = {"1": list(measure.notesAndRests)}
    for voice in measure.voices:
        groups.setdefault(str(voice.id), []).extend(voice.notesAndRests)
    return {k: kept for k, v in groups.items()
            if (kept := [e for e in v if not e.style.hideObjectOnPrint])}


def drop_invisible_notes(score) -> int:
    """Remove the notes a score does not print (``print-object="no"``); returns how many.

    Such notes are playback material, such as the written-out trills of
    Haydn's op. 1/1 iii (1,210 hidden notes beside 891 printed ones): they
    have no notehead, so they cannot be aligned and must not sound either;
    the page and the audio agree note for note.
    """
    hidden = [n for n in score.recurse().notes if n.style.hideObjectOnPrint]
    for n in hidden:
        n.activeSite.remove(n)
    return len(hidden)


def _merge_staff(upper, lower, clef_obj, number: int):
    """One piano staff holding two parts: the voices of ``upper`` stems up, of ``lower`` down.

    Every voice of a source part stays a voice of its own (notes that
    overlap within one source voice are split further), so no voice is
    overfull; a source voice keeps its staff voice from measure to measure.
    """
    from music21 import stream

    staff = stream.PartStaff(id=f"P{number}")
    mu, ml = list(upper.getElementsByClass("Measure")), list(lower.getElementsByClass("Measure"))
    if len(mu) != len(ml):
        raise ValueError(f"parts have {len(mu)} and {len(ml)} measures")
    voice_ids: dict[tuple, str] = {}  # (source part, source voice, lane) -> staff voice id
    for i, (a, b) in enumerate(zip(mu, ml)):
        m = stream.Measure(number=a.number)
        m.numberSuffix, m.showNumber = a.numberSuffix, a.showNumber  # a pickup stays implicit
        # a pickup (or a short last bar) is as short as the fuller of the two parts says
        m.paddingLeft = min(a.paddingLeft, b.paddingLeft)
        m.paddingRight = min(a.paddingRight, b.paddingRight)
        if i == 0:
            m.insert(0, copy.deepcopy(clef_obj))
        for cls in ("KeySignature", "TimeSignature"):
            for el in a.getElementsByClass(cls):
                m.insert(el.offset, copy.deepcopy(el))
        m.leftBarline = copy.deepcopy(a.leftBarline)
        m.rightBarline = copy.deepcopy(a.rightBarline)
        for src_no, (src, stem) in enumerate(((a, "up"), (b, "down"))):
            for group, elements in _voice_groups(src).items():
                for lane_no, lane in enumerate(_lanes(elements, _bar_end(src))):
                    key = (src_no, group, lane_no)
                    vid = voice_ids.setdefault(key, str(len(voice_ids) + 1))
                    voice = stream.Voice(id=vid)
                    for n in lane:
                        n2 = copy.deepcopy(n)
                        n2.lyrics = []
                        if n2.isNote or n2.isChord:
                            n2.stemDirection = stem
                        voice.insert(n.offset, n2)
                    m.insert(0, voice)
        staff.append(m)
    return staff


def tempo_marks(score) -> list[tuple[float, object]]:
    """Tempo indications of a score, once each: ``(offset in quarter notes, mark)``, in order.

    A marking that several parts repeat (kern writes it in every spine) is
    kept once.
    """
    from music21 import tempo

    seen, marks = set(), []
    for mark in score.recurse().getElementsByClass(tempo.TempoIndication):
        offset = float(mark.getOffsetInHierarchy(score))
        key = (offset, type(mark).__name__, getattr(mark, "number", None),
               getattr(mark, "numberSounding", None), str(getattr(mark, "text", None)))
        if key not in seen:
            seen.add(key)
            marks.append((offset, mark))
    return sorted(marks, key=lambda om: om[0])


def _insert_tempo_marks(score, source_part, staff) -> None:
    """Copy the score's tempo marks into ``staff``, whose measures match ``source_part``'s."""
    src_measures = list(source_part.getElementsByClass("Measure"))
    measures = list(staff.getElementsByClass("Measure"))
    if not src_measures:
        return
    starts = [float(m.getOffsetInHierarchy(score)) for m in src_measures]
    for offset, mark in tempo_marks(score):
        k = max(0, bisect.bisect_right(starts, offset + 1e-9) - 1)
        measures[k].insert(max(0.0, offset - starts[k]), copy.deepcopy(mark))


def reduce_to_grand_staff(score):
    """Reduce a four-part score to piano: parts 1+2 on a treble, 3+4 on a bass staff.

    Each part's voices stay voices; the score's tempo markings go to the
    treble staff, so the reduction plays at the written tempi.
    """
    from music21 import clef, layout, stream

    s, a, t, b = pick_four_parts(list(score.parts))
    upper = _merge_staff(s, a, clef.TrebleClef(), 1)
    lower = _merge_staff(t, b, clef.BassClef(), 2)
    _insert_tempo_marks(score, s, upper)
    piano = stream.Score(id="piano")
    piano.metadata = copy.deepcopy(score.metadata)
    piano.insert(0, upper)
    piano.insert(0, lower)
    piano.insert(0, layout.StaffGroup([upper, lower], symbol="brace", barTogether=True))
    return piano


def load_musicxml(source: PieceSource) -> str:
    """The score of ``source`` as MusicXML text (reduced when asked), part names removed.

    A score is reduced only when ``source.reduce`` asks for it and the
    score really is for four or more non-keyboard parts
    (:func:`is_ensemble_score`); a piano score is engraved as written.
    Notes the score does not print are dropped (:func:`drop_invisible_notes`),
    pickups and split bars are marked implicit (:func:`mark_partial_measures`).

    Raises
    ------
    ValueError
        When music21 cannot read the file or reduce it.
    """
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = parse_score(source.path)
    drop_invisible_notes(score)
    mark_partial_measures(score)
    if source.reduce and is_ensemble_score(score):
        score = reduce_to_grand_staff(score)
    for part in score.parts:
        part.partName = ""
        part.partAbbreviation = ""
        for inst in part.getInstruments(returnDefault=False):
            inst.partName = None
            inst.partAbbreviation = None
            inst.instrumentName = None
            inst.instrumentAbbreviation = None
    return GeneralObjectExporter(score).parse().decode("utf-8")
