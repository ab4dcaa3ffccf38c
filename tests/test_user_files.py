"""The user's own files: identify and locate a recording among score files with the shipped model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_sheet_retrieval import library, pretrained
from audio_sheet_retrieval.build.pipeline import engrave_source
from audio_sheet_retrieval.build.sources import load_musicxml, resolve
from audio_sheet_retrieval.build.synth import render
from audio_sheet_retrieval.errors import AsrError

REPO = Path(__file__).resolve().parents[1]
N_SCORES = 6


@pytest.fixture(scope="module")
def shipped():
    assert pretrained.DEFAULT_MODEL in pretrained.available(), "no shipped model under pretrained/"
    return pretrained.load_pretrained()


@pytest.fixture(scope="module")
def scores_and_recording(tmp_path_factory, shipped):
    """MusicXML files of held-out test pieces, and a recording of the first one (44.1 kHz stereo)."""
    _, config, meta = shipped
    folder = tmp_path_factory.mktemp("scores")
    sources = resolve(meta["test_sources"][:N_SCORES])
    for src in sources:
        (folder / f"{src.name}.musicxml").write_text(load_musicxml(src))
    events = engrave_source(sources[0], "verovio").note_events
    audio = render(config["TEST_SYNTH"], events)
    stereo = np.repeat(np.interp(np.arange(0, len(audio), 0.5), np.arange(len(audio)), audio)[:, None], 2, 1)
    recording = folder.parent / "recording.wav"
    sf.write(recording, stereo.astype(np.float32), 44100)
    return folder, recording, sources[0].name


def test_shipped_model_identifies_an_unseen_piece(shipped, scores_and_recording):
    model, _, meta = shipped
    folder, recording, truth = scores_and_recording
    assert truth in meta["test_pieces"]  # never seen in training
    db = library.open_library([folder], model, params_id="test", cache=folder.parent / "lib.npz")
    assert db.n_pieces == N_SCORES and db.locations is not None
    ranking = library.identify_recording(recording, db, model)
    assert ranking.top(1)[0][0] == truth


def test_asr_cli_identify_and_locate(scores_and_recording, tmp_path):
    folder, recording, truth = scores_and_recording
    cli = [sys.executable, "-m", "audio_sheet_retrieval.cli"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run(cli + ["identify", str(recording), "--scores", str(folder)],
                         capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["rank", "votes/snippet"]
    rows = [line.split() for line in lines[1:]]
    assert rows[0][0] == "1" and rows[0][-1] == truth
    # the first figure is the one the pieces are ranked by: votes / snippets
    figures = [float(r[1]) for r in rows]
    assert figures == sorted(figures, reverse=True)
    assert all(abs(float(r[1]) - int(r[2]) / int(r[3])) < 1e-3 * max(float(r[1]), 1e-3) for r in rows)
    assert list((tmp_path / "audio_sheet_retrieval").glob("library-*.npz"))  # the user cache
    out = subprocess.run(cli + ["locate", str(recording), "--scores", str(folder / f"{truth}.musicxml"),
                                "--hop_s", "2"], capture_output=True, text=True, cwd=REPO, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    pages = [int(r[1]) for r in rows]
    times = [float(r[0]) for r in rows]
    assert len(rows) > 5 and pages[0] == 1 and times == sorted(times)
    # the located systems move forward through the score as the recording plays
    order = [(int(r[1]), int(r[2])) for r in rows]
    assert np.mean([b >= a for a, b in zip(order, order[1:])]) > 0.8


def test_page_images_and_pdf_as_scores(shipped, scores_and_recording, tmp_path):
    import pymupdf
    from PIL import Image

    model, _, _ = shipped
    folder, recording, truth = scores_and_recording
    engraved = engrave_source(resolve([f"{folder}/{truth}.musicxml"])[0], "verovio")
    pages = [Image.fromarray(p) for p in engraved.pages]
    pages[0].save(tmp_path / "page.png")
    doc = pymupdf.open()
    for i, page in enumerate(pages):
        page.save(tmp_path / f"p{i}.png")
        img = pymupdf.open(tmp_path / f"p{i}.png")
        doc.insert_pdf(pymupdf.open("pdf", img.convert_to_pdf()))
    doc.save(tmp_path / "score.pdf")
    score = library.unroll_score_file(tmp_path / "score.pdf")
    assert len(score.unrolled.systems) == len(engraved.systems)


@pytest.mark.parametrize("case", ["missing", "not_audio", "too_short", "silent", "nan"])
def test_bad_recordings_are_one_line(shipped, scores_and_recording, tmp_path, case):
    model, _, _ = shipped
    folder, _, _ = scores_and_recording
    path = tmp_path / "x.wav"
    if case == "not_audio":
        path.write_text("hello")
    elif case == "too_short":
        sf.write(path, np.random.default_rng(0).normal(0, 0.1, 22050).astype(np.float32), 22050)
    elif case == "silent":
        sf.write(path, np.zeros(22050 * 5, dtype=np.float32), 22050)
    elif case == "nan":
        sf.write(path, np.full(22050 * 5, np.nan, dtype=np.float32), 22050, subtype="FLOAT")
    db = library.open_library([folder], model, params_id="test", cache=folder.parent / "lib.npz")
    with pytest.raises(AsrError) as err:
        library.identify_recording(path, db, model)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_bad_score_inputs_are_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(AsrError, match="no score files"):
        library.score_files([tmp_path])
    with pytest.raises(AsrError, match="not a score file"):
        library.score_files([tmp_path / "notes.txt"])
    bad = tmp_path / "bad.musicxml"
    bad.write_text("<score-partwise>")
    with pytest.raises(AsrError, match="cannot engrave"):
        library.unroll_score_file(bad)
