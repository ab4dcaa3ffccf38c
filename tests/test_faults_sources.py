"""Fault injection on score sources: hostile LilyPond and MusicXML, music21's parse cache,
reductions that lose music, and the builder's fidelity checks.

Every test here failed on the code before the fixes it covers: LilyPond ran
``#(system ...)`` from a user's ``.ly`` and from MusicXML words, music21 loaded
a pickle planted in its shared cache (and a stale parse of a replaced score),
Mozart's K. 545 went to the quartet reduction and failed, reductions played at
120 bpm and stacked voices into overfull bars, and a piece's duration was the
last-sorted note's end.
"""

from __future__ import annotations

import base64
import io
import os
import pickle
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import mido
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
needs_lilypond = pytest.mark.skipif(shutil.which("lilypond") is None, reason="LilyPond not installed")

MUSIC = "\\score { \\relative c' { c4 d e f | g1 } \\layout { } \\midi { } }\n"


def _ly(tmp_path: Path, body: str, name: str = "score.ly") -> Path:
    path = tmp_path / name
    path.write_text('\\version "2.24.0"\n' + body + "\n" + MUSIC, encoding="utf-8")
    return path


def _verovio_midi(musicxml: str) -> mido.MidiFile:
    import verovio

    from audio_sheet_retrieval.build.engrave_verovio import VEROVIO_OPTIONS

    tk = verovio.toolkit()
    tk.setOptions(VEROVIO_OPTIONS)
    assert tk.loadData(musicxml)
    return mido.MidiFile(file=io.BytesIO(base64.b64decode(tk.renderToMIDI())))


# --- item 4: LilyPond runs no code from a score ----------------------------------------------

ESCAPES = {
    "system": '#(system "touch {marker}")',
    "ly-system": '#(ly:system "touch {marker}")',
    "open-output-file": '#(close-port (open-output-file "{marker}"))',
    "dollar": '$(system "touch {marker}")',
    "nested-call": '#(set-global-staff-size (begin (system "touch {marker}") 20))',
    "comment-ends-at-cr": '% a comment\r#(system "touch {marker}")',
    "percent-in-lyric-word": 'words = \\lyricmode {{ a%b #(system "touch {marker}") }}',
    "percent-in-markup-word": 'mk = \\markup {{ x%{{ }}\n#(system "touch {marker}")\n%}} }}',
    "backslash-quote": 'foo = \\" #(system "touch {marker}") "',
    "version-string": '\\version "2.24\\" #(system "touch {marker}") "',
    "procedure-callback": '\\applyContext #(lambda (c) (system "touch {marker}"))',
    "include-passwd": '\\include "/etc/passwd"',
    "include-parent": '\\include "../parent.ly"',
    "output-elsewhere": '\\bookOutputName "{marker}"',
}


@needs_lilypond
@pytest.mark.parametrize("escape", list(ESCAPES))
def test_untrusted_lilypond_runs_nothing(tmp_path, escape):
    from audio_sheet_retrieval.build.engrave_lilypond import engrave
    from audio_sheet_retrieval.build.lilypond_guard import UnsafeScoreError
    from audio_sheet_retrieval.errors import AsrError

    marker = tmp_path / "ran"
    (tmp_path / "parent.ly").write_text(f'#(system "touch {marker}")\n')
    folder = tmp_path / "scores"
    folder.mkdir()
    path = _ly(folder, ESCAPES[escape].format(marker=marker))
    with pytest.raises(UnsafeScoreError) as err:
        engrave(path, is_lilypond=True)
    message = str(err.value)
    assert isinstance(err.value, AsrError) and "\n" not in message
    assert str(path) in message and "line " in message and "refused" in message
    assert not marker.exists() and not list(tmp_path.glob("ran*"))


@needs_lilypond
def test_untrusted_lilypond_from_the_asr_library_and_the_builder(tmp_path):
    """The user-facing ways in: ``asr``'s score library and ``build_dataset.py``."""
    from audio_sheet_retrieval.errors import AsrError
    from audio_sheet_retrieval.library import unroll_score_file

    marker = tmp_path / "ran"
    path = _ly(tmp_path, f'#(system "touch {marker}")', name="evil.ly")
    with pytest.raises(AsrError, match="evil.ly") as err:
        unroll_score_file(path)
    assert "\n" not in str(err.value) and not marker.exists()

    proc = subprocess.run(
        [sys.executable, str(REPO / "build_dataset.py"), "--pieces", str(path), "--root",
         str(tmp_path / "root"), "--synths", "TimGM6mbPiano", "--tempi", "1.0"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    failed = [line for line in proc.stdout.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "evil.ly: line 2: refused" in failed[0], proc.stdout
    assert "Traceback" not in proc.stderr and not marker.exists()


@needs_lilypond
def test_lilypond_that_is_only_music_still_engraves(tmp_path):
    """Data Scheme, LilyPond's own language files and the score's own includes are fine."""
    from audio_sheet_retrieval.build.engrave_lilypond import engrave

    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "global.ly").write_text("global = { \\time 4/4 \\key d \\major }\n")
    path = tmp_path / "piece.ly"
    path.write_text("\n".join([
        '\\version "2.24.0"', '\\include "english.ly"', '\\include "parts/global.ly"',
        "#(set-global-staff-size 18)",
        "\\score { \\new Staff { \\override Staff.TimeSignature.stencil = ##f",
        "  \\set Score.tempoHideNote = ##t \\tempo 4 = 90",
        "  \\override Stem.direction = #UP \\set Timing.beamExceptions = #'()",
        "  \\global \\relative c' { cs4 ef8 ef gs2 | d1 } } \\layout { } \\midi { } }", ""]))
    engraved = engrave(path, is_lilypond=True)
    assert len(engraved.noteheads) == 5 and len(engraved.note_events) == 5
    assert abs(engraved.note_events[1, 0] - 60 / 90) < 1e-3  # the tempo of the score


@needs_lilypond
def test_musicxml_text_cannot_become_lilypond_code(tmp_path):
    """musicxml2ly copies words into its output unescaped: they must not run."""
    from audio_sheet_retrieval.build.engrave_lilypond import engrave

    marker = tmp_path / "ran"
    inject = f'x" #(system "touch {marker}") "'
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><work><work-title>{inject}</work-title></work>
<part-list><score-part id="P1"><part-name>{inject}</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions>
<time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef>
</attributes><direction><direction-type><words>{inject}</words></direction-type></direction>
<note><pitch><step>C</step><octave>5</octave></pitch><duration>4</duration><type>whole</type>
<lyric><text>{inject}</text></lyric></note></measure></part></score-partwise>"""
    engraved = engrave(xml)
    assert len(engraved.noteheads) == 1 and not marker.exists()
    assert "#(system" not in engraved.source


# --- item 5: music21's parse cache is never read ---------------------------------------------

@pytest.fixture()
def music21_scratch(tmp_path):
    """music21's scratch folder (where it keeps parse pickles) moved into ``tmp_path``."""
    from music21 import environment

    env = environment.Environment()
    before = env["directoryScratch"]
    scratch = tmp_path / "music21_scratch"
    scratch.mkdir()
    env["directoryScratch"] = str(scratch)
    yield scratch
    env["directoryScratch"] = before


class _Plant:
    """Unpickling this touches a file: evidence that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _corpus_file(name: str) -> Path:
    from audio_sheet_retrieval.build.sources import corpus_names

    return corpus_names()[name]


def test_planted_parse_cache_is_not_loaded(tmp_path, music21_scratch):
    from music21 import converter

    from audio_sheet_retrieval.build.sources import PieceSource, load_musicxml

    score = tmp_path / "chorale.mxl"
    shutil.copy(_corpus_file("bach/bwv259"), score)
    old = time.time() - 3600
    os.utime(score, (old, old))
    pickle_path = converter.PickleFilter(score).getPickleFp(music21_scratch, zipType="gz")
    marker = tmp_path / "pickle_ran"
    pickle_path.write_bytes(zlib.compress(pickle.dumps(_Plant(marker))))  # music21's format
    xml = load_musicxml(PieceSource("chorale", score, reduce=True))
    assert not marker.exists()
    assert xml.count("<measure ") == 12  # one grand-staff part


def test_score_replaced_by_an_older_file_is_read_again(tmp_path, music21_scratch):
    from audio_sheet_retrieval.build.sources import PieceSource, load_musicxml

    score = tmp_path / "chorale.mxl"
    shutil.copy(_corpus_file("bach/bwv259"), score)
    first = load_musicxml(PieceSource("chorale", score, reduce=True))
    shutil.copy(_corpus_file("bach/bwv165.6"), score)
    old = time.time() - 3600
    os.utime(score, (old, old))  # older than any cache entry of the first parse
    second = load_musicxml(PieceSource("chorale", score, reduce=True))
    assert first.count("<measure ") == 12 and second.count("<measure ") == 9


# --- data quality: what the builder makes is what the score says ----------------------------

def test_solo_piano_work_is_not_sent_to_the_quartet_reduction():
    from audio_sheet_retrieval.build.sources import (
        PieceSource,
        demo_specs,
        is_ensemble_score,
        load_musicxml,
        parse_score,
        quartet_specs,
        resolve,
    )

    name = "mozart/k545/movement1_exposition"
    assert name in demo_specs() and name not in quartet_specs()
    source = resolve([name])[0]
    assert not source.reduce
    assert not is_ensemble_score(parse_score(source.path))
    assert is_ensemble_score(parse_score(_corpus_file("bach/bwv259")))
    # asked to reduce anyway (a quartet pattern), the score itself decides: engraved as written
    xml = load_musicxml(PieceSource(source.name, source.path, reduce=True))
    assert xml.count("<measure ") >= 12 and "<staves>2</staves>" in xml


def test_reduction_plays_the_written_tempo():
    """BWV 165.6 is marked 96 quarter notes per minute; the reduction must say so."""
    from audio_sheet_retrieval.build.checks import summarize_source
    from audio_sheet_retrieval.build.midi import read_note_events
    from audio_sheet_retrieval.build.sources import load_musicxml, resolve

    source = resolve(["bach/bwv165.6"])[0]
    assert source.reduce
    xml = load_musicxml(source)
    assert xml.count("<part ") == 1 and "<staves>2</staves>" in xml  # reduced to a grand staff
    midi = _verovio_midi(xml)
    tempos = [round(mido.tempo2bpm(m.tempo), 3) for t in midi.tracks for m in t if m.type == "set_tempo"]
    assert tempos and set(tempos) == {96.0}
    buf = io.BytesIO()
    midi.save(file=buf)
    events = read_note_events(buf.getvalue())
    expected = summarize_source(source)
    assert abs((events[:, 0] + events[:, 2]).max() - expected.end_s) < 0.05
    assert expected.end_s == pytest.approx(32 * 60 / 96, abs=0.01)  # 32 quarter notes at 96


def test_reduction_keeps_every_voice():
    """Schumann op. 41/1 iii has parts in two printed voices: none may be stacked into one."""
    from audio_sheet_retrieval.build.checks import summarize_score, summarize_source
    from audio_sheet_retrieval.build.sources import parse_score, reduce_to_grand_staff, resolve

    source = resolve(["schumann_robert/opus41no1/movement3"])[0]
    expected = summarize_source(source)
    reduced = reduce_to_grand_staff(parse_score(source.path))
    for staff in reduced.parts:
        for measure in staff.getElementsByClass("Measure"):
            bar = float(measure.barDuration.quarterLength)
            for voice in measure.voices:
                sounding = sorted((float(n.offset), float(n.offset + n.quarterLength))
                                  for n in voice.notes)
                assert all(b[0] >= a[1] - 1e-9 for a, b in zip(sounding, sounding[1:])), (
                    f"measure {measure.number}: notes overlap within a voice")
                assert all(end <= bar + 1e-9 for _, end in sounding), measure.number
    reread = summarize_score(reduced, [[p] for p in reduced.parts])
    assert reread.notes == expected.notes == 1772 and reread.measures == expected.measures


def test_notes_the_score_does_not_print_are_left_out():
    """Haydn op. 1/1 iii prints 891 notes and hides 1,210 that play its trills: those have no
    notehead, so they must not sound either (they overfilled the bars of the reduction)."""
    from audio_sheet_retrieval.build.checks import summarize_source
    from audio_sheet_retrieval.build.midi import read_note_events
    from audio_sheet_retrieval.build.sources import load_musicxml, resolve

    source = resolve(["haydn/opus1no1/movement3"])[0]
    expected = summarize_source(source)
    assert (expected.notes, expected.measures) == (878, 42)  # 891 printed, 13 tie continuations
    xml = load_musicxml(source)
    notes = ET.fromstring(xml.encode()).iter("note")
    assert not [n for n in notes if n.get("print-object") == "no" and n.find("pitch") is not None]
    buf = io.BytesIO()
    _verovio_midi(xml).save(file=buf)
    events = read_note_events(buf.getvalue())
    assert len(events) == expected.notes
    assert abs((events[:, 0] + events[:, 2]).max() - expected.end_s) < 0.03 * expected.end_s


@needs_lilypond
@pytest.mark.parametrize("name, implicit, end_s", [
    ("bach/bwv165.6", 'implicit="yes" number="0"', 20.0),  # a pickup, 96 bpm: 17.5 s before
    ("bach/bwv265", 'implicit="yes" number="4a"', 16.0),  # a bar split by a repeat: 19.5 s before
])
def test_lilypond_plays_the_reduction_as_written(name, implicit, end_s):
    """musicxml2ly played tempo-only marks at 120 bpm and filled pickups and split bars."""
    from audio_sheet_retrieval.build.checks import check_engraving
    from audio_sheet_retrieval.build.pipeline import engrave_source
    from audio_sheet_retrieval.build.sources import load_musicxml, resolve

    source = resolve([name])[0]
    assert implicit in load_musicxml(source)
    engraved = engrave_source(source, "lilypond")
    summary = check_engraving(source, engraved)
    events = engraved.note_events
    assert summary.end_s == pytest.approx(end_s)
    assert abs((events[:, 0] + events[:, 2]).max() - end_s) < 0.01


@pytest.fixture(scope="module")
def engraved_chorale():
    from audio_sheet_retrieval.build.pipeline import engrave_source
    from audio_sheet_retrieval.build.sources import resolve

    source = resolve(["bach/bwv165.6"])[0]
    return source, engrave_source(source, "verovio")


def test_check_engraving_passes_a_faithful_build(engraved_chorale):
    from audio_sheet_retrieval.build.checks import check_engraving

    source, engraved = engraved_chorale
    summary = check_engraving(source, engraved)
    assert summary.notes == len(engraved.note_events) and summary.measures == engraved.measures == 9


@pytest.mark.parametrize("name, what", [
    ("bach/bwv277", "padding_s"),  # a bar split by a repeat sign: verovio plays it full
    ("schumann_clara/polonaise_op1n4", "tremolo_notes"),  # 24 tremolos played as repeated notes
])
def test_check_engraving_knows_what_verovio_adds(name, what):
    from audio_sheet_retrieval.build.checks import check_engraving
    from audio_sheet_retrieval.build.pipeline import engrave_source
    from audio_sheet_retrieval.build.sources import resolve

    source = resolve([name])[0]
    summary = check_engraving(source, engrave_source(source, "verovio"))
    assert getattr(summary, what) > 0


@pytest.mark.parametrize("fault", ["lost notes", "played at 120 bpm", "extra measure"])
def test_check_engraving_fails_loudly(engraved_chorale, fault):
    from dataclasses import replace

    from audio_sheet_retrieval.build.checks import FidelityError, check_engraving
    from audio_sheet_retrieval.errors import AsrError

    source, engraved = engraved_chorale
    events = engraved.note_events.copy()
    if fault == "lost notes":
        broken, what = replace(engraved, note_events=np.delete(events, np.s_[::10], axis=0)), "notes"
    elif fault == "played at 120 bpm":
        events[:, [0, 2]] *= 96 / 120
        broken, what = replace(engraved, note_events=events), "lasts"
    else:
        broken, what = replace(engraved, measures=engraved.measures + 1), "measures"
    with pytest.raises(FidelityError, match=what) as err:
        check_engraving(source, broken)
    assert isinstance(err.value, AsrError) and str(err.value).startswith(source.name)


def test_builder_fails_a_piece_whose_reduction_loses_the_tempo(tmp_path, monkeypatch):
    """The check runs in the builder: a reduction without tempo marks fails the piece."""
    from audio_sheet_retrieval.build import sources
    from audio_sheet_retrieval.build.pipeline import BuildOptions, build_piece

    monkeypatch.setattr(sources, "_insert_tempo_marks", lambda *args: None)  # the old bug
    options = BuildOptions(synths=("TimGM6mbPiano",), tempi=(1.0,))
    report = build_piece(sources.resolve(["bach/bwv165.6"])[0], tmp_path, options)
    assert report.status == "failed"
    assert report.error.startswith("bach__bwv165-6: built music differs from the score")
    assert "lasts" in report.error and not (tmp_path / "bach__bwv165-6").exists()


@pytest.fixture(scope="module")
def held_bass_piece(tmp_path_factory):
    """A real one-measure piece built end to end: a quarter note over a held whole note."""
    from music21 import clef, meter, note, stream

    from audio_sheet_retrieval.build.pipeline import BuildOptions, build_piece
    from audio_sheet_retrieval.build.sources import resolve

    tmp = tmp_path_factory.mktemp("held")
    upper, lower = stream.PartStaff(), stream.PartStaff()
    m1 = stream.Measure([clef.TrebleClef(), meter.TimeSignature("4/4"), note.Note("E5", quarterLength=1),
                         note.Rest(quarterLength=3)])
    m2 = stream.Measure([clef.BassClef(), meter.TimeSignature("4/4"), note.Note("C3", quarterLength=4)])
    upper.append(m1)
    lower.append(m2)
    score = stream.Score([upper, lower])
    path = score.write("musicxml", fp=tmp / "held.musicxml")
    options = BuildOptions(synths=("TimGM6mbPiano", "FreepatsGrand"), tempi=(1.0, 1.1))
    source = resolve([str(path)])[0]
    report = build_piece(source, tmp / "root", options)
    assert report.status == "built", report.error
    return tmp / "root" / source.name, options


def test_duration_is_the_end_of_the_longest_note(held_bass_piece):
    import yaml

    from audio_sheet_retrieval.build.midi import end_time_s, read_note_events

    piece, _ = held_bass_piece
    meta = yaml.safe_load((piece / "meta.yml").read_text())
    events = read_note_events(piece / f"{piece.name}.mid")
    assert events[-1, 0] == 0.0 and events[-1, 2] == pytest.approx(0.5, abs=0.01)  # sorts last
    assert meta["duration_s_at_tempo_1"] == pytest.approx(2.0, abs=0.01) == end_time_s(events)


def test_check_performances_fails_a_short_performance(held_bass_piece, tmp_path):
    from audio_sheet_retrieval.build.checks import FidelityError, check_performances
    from audio_sheet_retrieval.build.midi import read_note_events
    from audio_sheet_retrieval.data.layout import feature_path, performance_name

    piece, options = held_bass_piece
    events = read_note_events(piece / f"{piece.name}.mid")
    perfs = {performance_name(piece.name, t, s): t for t in options.tempi for s in options.synths}
    check_performances(piece.name, piece / "performances", events, perfs)  # as built: agrees
    more = np.vstack([events, [[4.0, 60, 1.0, 0, 0]]])
    with pytest.raises(FidelityError, match="plays 2 notes, the MIDI 3"):
        check_performances(piece.name, piece / "performances", more, perfs)
    copy = tmp_path / "performances"
    shutil.copytree(piece / "performances", copy)
    perf = next(iter(perfs))
    spec_file = feature_path(copy / perf, "spec")
    np.save(spec_file, np.load(spec_file)[:, :10])  # half a second of sound
    with pytest.raises(FidelityError, match=f"{perf} lasts 0.5 s for notes ending at"):
        check_performances(piece.name, copy, events, perfs)


def test_lilypond_runs_in_a_sandbox_even_past_the_guard(tmp_path):
    """The second wall: code that got past the guard can still write only its work folder."""
    import subprocess

    from audio_sheet_retrieval.build.sandbox import bwrap_path, sandboxed

    if bwrap_path() is None:
        pytest.skip("bubblewrap cannot create namespaces on this machine (scripts/setup.sh installs it)")
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (work / "evil.ly").write_text(  # the guard would refuse this; run LilyPond on it directly
        '\\version "2.24.0"\n'
        f'#(system "touch {outside}/ran-outside; touch {work}/ran-inside")\n'
        f'#(call-with-output-file "{outside}/written" (lambda (p) (display "x" p)))\n'
        "{ c'4 }\n")
    proc = subprocess.run(sandboxed(["lilypond", "--pdf", "evil.ly"], work), cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert not any(outside.iterdir()), proc.stderr[-2000:]       # nothing escaped the work folder
    assert (work / "ran-inside").exists() or "Permission" in proc.stderr or proc.returncode != 0
