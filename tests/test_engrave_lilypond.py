"""LilyPond engraver: pages, noteheads against MIDI, systems (Bach, BWV 846)."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from audio_sheet_retrieval.build.engraving import PAGE_WIDTH_PX

pytestmark = pytest.mark.skipif(shutil.which("lilypond") is None, reason="LilyPond not installed")

BWV846_SYSTEMS = 11  # 5 + 6 grand staves on 2 pages, counted by eye on the rendered pages


@pytest.fixture(scope="module")
def bwv846():
    corpus = pytest.importorskip("music21.corpus")
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from audio_sheet_retrieval.build.engrave_lilypond import engrave

    xml = GeneralObjectExporter(corpus.parse("bach/bwv846")).parse().decode("utf-8")
    return engrave(xml)


def test_pages(bwv846):
    assert bwv846.engraver == "lilypond" and bwv846.source_suffix == ".ly"
    assert len(bwv846.pages) == 2
    for page in bwv846.pages:
        assert page.dtype == np.uint8 and page.ndim == 2 and page.shape[1] == PAGE_WIDTH_PX


def test_heads_match_midi_one_to_one(bwv846):
    sounding = [h for h in bwv846.noteheads if h.onset_s is not None]
    assert len(bwv846.noteheads) == 601
    assert len(sounding) == len(bwv846.note_events) == 532  # LilyPond merges one unison
    heads = Counter((round(h.onset_s, 2), h.pitch) for h in sounding)
    midi = Counter((round(float(t), 2), int(p)) for t, p in bwv846.note_events[:, :2])
    assert heads == midi


def test_filled_heads_on_ink(bwv846):
    on_ink = [bwv846.pages[h.page][int(h.center[0]), int(h.center[1])] < 128
              for h in bwv846.noteheads if h.filled]
    assert np.mean(on_ink) >= 0.9


def test_systems(bwv846):
    systems = bwv846.systems
    assert len(systems) == BWV846_SYSTEMS
    assert systems == sorted(systems, key=lambda s: (s.page, s.top))
    assert all(len(s.staff_lines) == 10 for s in systems)  # grand staves
    for head in bwv846.noteheads:
        row = head.center[0]
        assert any(s.page == head.page and s.top - 20 <= row <= s.bottom + 20 for s in systems)
        assert head.staff in (1, 2)


def test_lilypond_error_is_one_line(tmp_path):
    from audio_sheet_retrieval.build.engrave_lilypond import engrave

    bad = tmp_path / "bad.ly"
    bad.write_text('\\version "2.24.0"\n\\score { { c4 \\nosuchcommand } }\n')
    with pytest.raises(ValueError, match="bad.ly") as err:
        engrave(bad, is_lilypond=True)
    assert "\n" not in str(err.value)


def test_build_with_lilypond_engraver(tmp_path):
    from audio_sheet_retrieval.build.dataset import build_dataset
    from audio_sheet_retrieval.build.pipeline import BuildOptions
    from audio_sheet_retrieval.build.sources import resolve
    from audio_sheet_retrieval.data.msmd import Piece
    from audio_sheet_retrieval.data.prepare import prepare_piece

    options = BuildOptions(engraver="lilypond", synths=("TimGM6mbPiano",), tempi=(1.0,))
    reports, _ = build_dataset(resolve(["bach/bwv259"]), tmp_path, options)
    assert [r.status for r in reports] == ["built"], reports[0].error
    piece = Piece(tmp_path, "bach__bwv259")
    assert piece.available_scores == ["bach__bwv259_ly"]  # MSMD's name for LilyPond scores
    meta = piece.meta
    assert meta["engraver"] == "lilypond" and meta["aligned_noteheads"] == meta["note_events"]
    prepared = prepare_piece(piece)
    assert len(prepared.unrolled.systems) == meta["systems"] and len(prepared.performances[0].frames) > 50
