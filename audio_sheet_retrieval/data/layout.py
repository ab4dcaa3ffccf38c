"""Paths of the MSMD layout, shared by the builder (writes) and the readers.

::

    <root>/<piece>/meta.yml
    <root>/<piece>/scores/<piece>_<engraver>/img/01.png          page images (835 px wide)
    <root>/<piece>/scores/<piece>_<engraver>/mung/01.xml         MuNG noteheads + systems
    <root>/<piece>/scores/<piece>_<engraver>/coords/notes_01.npy (row, col) notehead centres
    <root>/<piece>/scores/<piece>_<engraver>/coords/systems_01.npy  (n, 4, 2) system corners
    <root>/<piece>/performances/<perf>/<perf>.flac               mono 22,050 Hz audio
    <root>/<piece>/performances/<perf>/features/<perf>_spec.npy  (92, frames) spectrogram
    <root>/<piece>/performances/<perf>/features/<perf>_notes.npy (N, 5) note events
    <root>/<piece>/performances/<perf>/features/<perf>_onsets.npy (N,) onset frames
    <root>/<piece>/performances/<perf>/features/<perf>_midi.npy  (128, frames) piano roll

with ``<perf> = <piece>_tempo-<ratio x 1000>_<synth>``; the builder also keeps
``<root>/.build.lock`` (its lock) and ``<root>/.building/`` (its work folders).

A piece written by ``build_dataset.py`` records :data:`DATA_FORMAT_VERSION`
in its ``meta.yml`` (key :data:`FORMAT_KEY`); the readers refuse a piece of
another version, the builder rebuilds it. A piece of the real MSMD download
has neither that key nor the builder's :data:`BUILDER_KEY` and is read as is.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DATA_FORMAT_VERSION = 2
"""Version of what a built piece holds (features, files, meta).

1: the first builder (spectrogram frames started at ``floor(i * hop + 0.5)``).
2: madmom's framing (``int(i * hop)``), a content digest of the source score,
   and a list of the piece's files with their sizes in ``meta.yml``; piano reductions that keep
   every voice and the written tempo marks, checked against the score, MIDI and audio.
"""

FORMAT_KEY = "data_format_version"
"""``meta.yml`` key of the data format version of a built piece."""

BUILDER_KEY = "build_options_digest"
"""``meta.yml`` key that every version of the builder has written (its marker)."""

PIECE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")
"""Names the builder gives pieces: ASCII letters, digits, ``-`` and ``_``."""

_PERF = re.compile(r"^(?P<piece>.+)_tempo-(?P<tempo>\d+)_(?P<synth>.+)$")


def performance_name(piece: str, tempo: float, synth: str) -> str:
    """``<piece>_tempo-<ratio x 1000>_<synth>``."""
    return f"{piece}_tempo-{int(round(tempo * 1000))}_{synth}"


def parse_performance_name(perf: str) -> tuple[str, float, str]:
    """(piece, tempo ratio, synth) of a performance name."""
    m = _PERF.match(perf)
    if m is None:
        raise ValueError(f"{perf!r} is not an MSMD performance name (<piece>_tempo-<1000x>_<synth>)")
    return m.group("piece"), int(m.group("tempo")) / 1000.0, m.group("synth")


def page_file(index: int, suffix: str) -> str:
    """File name of page ``index`` (0-based): ``01.png``, ``01.xml``..."""
    return f"{index + 1:02d}{suffix}"


def feature_path(perf_dir: Path, kind: str) -> Path:
    """``<perf_dir>/features/<perf>_<kind>.npy`` for kind in spec, notes, onsets, midi."""
    return perf_dir / "features" / f"{perf_dir.name}_{kind}.npy"


def read_meta(folder: str | Path) -> dict | None:
    """The ``meta.yml`` of a piece folder; None when it is missing, unreadable or not a mapping.

    A link named ``meta.yml`` is not followed (None).
    """
    path = Path(folder) / "meta.yml"
    if path.is_symlink() or not path.is_file():
        return None
    try:
        meta = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return meta if isinstance(meta, dict) else None


def is_other_format(meta: dict) -> bool:
    """Whether a piece's meta says ``build_dataset.py`` wrote it in another data format.

    A piece of the real MSMD download (neither :data:`FORMAT_KEY` nor
    :data:`BUILDER_KEY`) is not; a piece of the first builder (the marker but no
    version) is version 1.
    """
    if FORMAT_KEY not in meta and BUILDER_KEY not in meta:
        return False
    return meta.get(FORMAT_KEY, 1) != DATA_FORMAT_VERSION
