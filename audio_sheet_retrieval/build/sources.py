"""Score sources: music21's bundled corpus and the user's own files.

A *piece spec* is a corpus name (``bach/bwv846``), a glob over corpus names
(``'bach/bwv2*'``) or a path to a MusicXML / ``.mxl`` / kern / ABC / LilyPond
file. Four-part scores (Bach chorales, string quartets) are reduced to a piano
grand staff: the upper two parts share the treble staff, the lower two the
bass staff, each part a voice of its own.
"""

from __future__ import annotations

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
    """Four-part corpus scores (chorales, quartets) become a piano grand staff."""
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
    return sorted({n for g in QUARTET_GLOBS for n in fnmatch.filter(names, g)})


# --- music21 side -------------------------------------------------------------------------

def _pick_four(parts: list) -> list:
    """The four parts to reduce: S, A, T, B by name, else the first four in order."""
    wanted = ("soprano", "alto", "tenor", "bass")
    by_name = {}
    for part in parts:
        label = (part.partName or part.id or "").lower() if isinstance(part.id, str) else (
            (part.partName or "").lower())
        for voice in wanted:
            if label.startswith(voice) and voice not in by_name:
                by_name[voice] = part
    if len(by_name) == 4:
        return [by_name[v] for v in wanted]
    if len(parts) >= 4:
        return list(parts[:4])
    raise ValueError(f"has {len(parts)} parts; a four-part score is needed for the piano reduction")


def _merge_staff(upper, lower, clef_obj, number: int):
    """One piano staff with ``upper`` as voice 1 (stems up) and ``lower`` as voice 2."""
    from music21 import stream

    staff = stream.PartStaff(id=f"P{number}")
    mu, ml = list(upper.getElementsByClass("Measure")), list(lower.getElementsByClass("Measure"))
    if len(mu) != len(ml):
        raise ValueError(f"parts have {len(mu)} and {len(ml)} measures")
    for i, (a, b) in enumerate(zip(mu, ml)):
        m = stream.Measure(number=a.number)
        m.paddingLeft = a.paddingLeft
        if i == 0:
            m.insert(0, copy.deepcopy(clef_obj))
        for cls in ("KeySignature", "TimeSignature"):
            for el in a.getElementsByClass(cls):
                m.insert(el.offset, copy.deepcopy(el))
        m.leftBarline = copy.deepcopy(a.leftBarline)
        m.rightBarline = copy.deepcopy(a.rightBarline)
        for vid, src, stem in ((1, a, "up"), (2, b, "down")):
            voice = stream.Voice(id=str(vid))
            for n in src.flatten().notesAndRests:
                n2 = copy.deepcopy(n)
                n2.lyrics = []
                if n2.isNote or n2.isChord:
                    n2.stemDirection = stem
                voice.insert(n.offset, n2)
            m.insert(0, voice)
        staff.append(m)
    return staff


def reduce_to_grand_staff(score):
    """Reduce a four-part score to piano: parts 1+2 on a treble, 3+4 on a bass staff."""
    from music21 import clef, layout, stream

    s, a, t, b = _pick_four(list(score.parts))
    upper = _merge_staff(s, a, clef.TrebleClef(), 1)
    lower = _merge_staff(t, b, clef.BassClef(), 2)
    piano = stream.Score(id="piano")
    piano.metadata = copy.deepcopy(score.metadata)
    piano.insert(0, upper)
    piano.insert(0, lower)
    piano.insert(0, layout.StaffGroup([upper, lower], symbol="brace", barTogether=True))
    return piano


def load_musicxml(source: PieceSource) -> str:
    """The score of ``source`` as MusicXML text (reduced when asked), part names removed.

    Raises
    ------
    ValueError
        When music21 cannot read the file or reduce it.
    """
    from music21 import converter, stream
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        score = converter.parse(str(source.path))
    except Exception as err:  # music21 raises many types on bad input
        raise ValueError(f"music21 cannot read it ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if isinstance(score, stream.Opus):
        score = score.scores[0]
    if source.reduce:
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
