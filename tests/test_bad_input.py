"""Bad input gives one clear line naming the file, and loses nothing built before."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from audio_sheet_retrieval.audio.io import load_audio
from audio_sheet_retrieval.build.dataset import build_dataset
from audio_sheet_retrieval.build.pipeline import BuildOptions
from audio_sheet_retrieval.build.sources import resolve
from audio_sheet_retrieval.build.synth import SynthError, SynthSpec, render
from audio_sheet_retrieval.data.msmd import Piece, load_split
from audio_sheet_retrieval.errors import AsrError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def piece_copy(built_root, tmp_path) -> Piece:
    shutil.copytree(built_root / "bach__bwv259", tmp_path / "bach__bwv259")
    return Piece(tmp_path, "bach__bwv259")


def _one_line(err: Exception, path: Path) -> str:
    msg = str(err)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_spectrogram(piece_copy):
    perf = piece_copy.load_performance("bach__bwv259_tempo-1000_FluidR3Grand")
    path = perf.folder / "features" / f"{perf.name}_spec.npy"
    path.unlink()
    with pytest.raises(AsrError) as err:
        perf.load_spectrogram()
    assert "missing" in _one_line(err.value, path)


def test_corrupt_npy(piece_copy):
    perf = piece_copy.load_performance("bach__bwv259_tempo-1000_FluidR3Grand")
    path = perf.folder / "features" / f"{perf.name}_notes.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(AsrError) as err:
        perf.load_note_events()
    assert "corrupt" in _one_line(err.value, path)


def test_wrong_spectrogram_shape(piece_copy):
    perf = piece_copy.load_performance("bach__bwv259_tempo-1000_FluidR3Grand")
    path = perf.folder / "features" / f"{perf.name}_spec.npy"
    np.save(path, np.zeros((84, 10), dtype=np.float32))
    with pytest.raises(AsrError) as err:
        perf.load_spectrogram(n_bins=92)
    assert "(84, 10)" in _one_line(err.value, path)


def test_corrupt_png(piece_copy):
    path = piece_copy.load_score().img_dir / "01.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(AsrError) as err:
        piece_copy.load_score().load_images()
    assert "corrupt page image" in _one_line(err.value, path)


def test_corrupt_mung(piece_copy):
    path = piece_copy.load_score().mung_dir / "01.xml"
    path.write_text("<CropObjectList><CropObjects><CropObject>")
    with pytest.raises(AsrError) as err:
        piece_copy.load_score().load_mungos()
    assert "corrupt MuNG" in _one_line(err.value, path)


def test_corrupt_and_missing_flac(piece_copy, tmp_path):
    perf = piece_copy.load_performance("bach__bwv259_tempo-1000_FluidR3Grand", require_audio=True)
    audio = load_audio(perf.audio_path)
    assert audio.ndim == 1 and len(audio) > 22050
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"fLaC" + bytes(100))
    with pytest.raises(AsrError) as err:
        load_audio(bad)
    assert "not a readable audio file" in _one_line(err.value, bad)
    with pytest.raises(AsrError, match="not found"):
        load_audio(tmp_path / "none.flac")


def test_absent_piece_and_bad_split(tmp_path):
    with pytest.raises(AsrError, match="piece not found"):
        Piece(tmp_path, "nope")
    path = tmp_path / "split.yaml"
    path.write_text("just text")
    with pytest.raises(AsrError, match="train/valid/test"):
        load_split(path)


def test_invalid_soundfont_is_an_error_not_a_fallback(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00sfbk" + bytes(64))
    spec = SynthSpec("Fake", "fluidsynth", fake)
    from audio_sheet_retrieval.build import synth

    synth.SYNTHS["Fake"] = spec
    try:
        with pytest.raises(SynthError, match="not a valid soundfont"):
            render("Fake", np.array([[0.0, 60, 0.5, 0, 0]]))
    finally:
        del synth.SYNTHS["Fake"]
    with pytest.raises(SynthError, match="unknown synth"):
        render("NoSuchPiano", np.array([[0.0, 60, 0.5, 0, 0]]))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "build_dataset.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_unknown_synth_is_one_line(tmp_path):
    proc = _cli("--root", str(tmp_path), "--pieces", "bach/bwv259", "--synths", "Nope")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown synth 'Nope'" in proc.stderr


def test_cli_unknown_piece_is_one_line(tmp_path):
    proc = _cli("--root", str(tmp_path), "--pieces", "bach/no_such_chorale")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "bach/no_such_chorale" in proc.stderr


def test_unreadable_score_is_skipped_and_nothing_is_lost(tmp_path):
    root = tmp_path / "root"
    options = BuildOptions(synths=("TimGM6mbPiano",), tempi=(1.0,))
    reports, _ = build_dataset(resolve(["bach/bwv259"]), root, options)
    assert [r.status for r in reports] == ["built"]
    before = sorted(p.relative_to(root) for p in (root / "bach__bwv259").rglob("*"))
    bad = tmp_path / "broken.musicxml"
    bad.write_text("<score-partwise><part id='P1'><measure>")
    reports, manifest = build_dataset(resolve(["bach/bwv259", str(bad)]), root, options)
    status = {r.name: r.status for r in reports}
    assert status == {"bach__bwv259": "skipped", "broken": "failed"}
    assert "music21 cannot read it" in manifest["last_run"]["failed"]["broken"]
    assert "\n" not in manifest["last_run"]["failed"]["broken"]
    assert sorted(p.relative_to(root) for p in (root / "bach__bwv259").rglob("*")) == before
    assert not (root / "broken").exists() and not (root / ".building").exists()
    assert yaml.safe_load((root / "splits" / "all_split.yaml").read_text())
