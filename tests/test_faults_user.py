"""Fault injection: what ``asr`` and the servers do with a user's recordings, pages and scores.

Real material only: scores engraved by the project's own engravers (verovio,
LilyPond), recordings synthesized by its synths; bad images made with PIL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from PIL import Image, ImageDraw, ImageFont

from audio_sheet_retrieval import library, pretrained
from audio_sheet_retrieval.audio.io import load_audio, recording_spectrogram
from audio_sheet_retrieval.build.engrave_verovio import engrave as engrave_verovio
from audio_sheet_retrieval.build.sources import PieceSource, load_musicxml, resolve
from audio_sheet_retrieval.build.synth import render
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.queries import audio_file_queries, page_file_queries
from audio_sheet_retrieval.sheet.pages import load_pages
from audio_sheet_retrieval.sheet.staff_detection import detect_systems

REPO = Path(__file__).resolve().parents[1]
PIECE = "bach/bwv259"  # one page, three grand-staff systems
TRAINED_LINE_DISTANCE_PX = 7.12  # sheet.staff_detection's, imported in the tests that need the new API


def _resized(page: np.ndarray, factor: float) -> np.ndarray:
    """A page resized by ``factor``."""
    h, w = page.shape
    size = (round(w * factor), round(h * factor))
    return np.asarray(Image.fromarray(page).resize(size, Image.Resampling.LANCZOS))


def _smaller_print(page: np.ndarray, factor: float) -> np.ndarray:
    """The page's music printed at ``factor`` of its size on a page of the same size."""
    small = _resized(page, factor)
    out = np.full_like(page, 255)
    r0, c0 = (page.shape[0] - small.shape[0]) // 2, (page.shape[1] - small.shape[1]) // 2
    out[r0:r0 + small.shape[0], c0:c0 + small.shape[1]] = small
    return out


def _asr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audio_sheet_retrieval.cli", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, **(env or {})})


# --------------------------------------------------------------------------
# Material
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_model():
    model, config, _ = pretrained.load_pretrained("demo")
    return model, config


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A verovio engraving of PIECE (MusicXML, page PNG), its unreduced four-staff engraving,
    a text page, and a synthesized recording of PIECE."""
    folder = tmp_path_factory.mktemp("material")
    source = resolve([PIECE])[0]
    musicxml = load_musicxml(source)
    (folder / "chorale.musicxml").write_text(musicxml)
    engraved = engrave_verovio(musicxml)
    Image.fromarray(engraved.pages[0]).save(folder / "chorale_page.png")
    quartet = engrave_verovio(load_musicxml(PieceSource("satb", source.path, reduce=False)))
    Image.fromarray(quartet.pages[0]).save(folder / "quartet.png")
    _text_page(folder / "letter.png")
    audio = render("MuseScoreGrand", engraved.note_events)
    sf.write(folder / "recording.wav", audio.astype(np.float32), 22050)
    return {"folder": folder, "engraved": engraved, "quartet": quartet, "audio": audio}


def _text_page(path: Path) -> None:
    """An A4 page of bold text lines, 22 px apart (five of them look like a staff to a comb)."""
    img = Image.new("L", (835, 1181), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(Path(__import__("matplotlib").get_data_path())
                                  / "fonts/ttf/DejaVuSerif-Bold.ttf"), 14)
    words = "the quick brown fox jumps over a lazy dog while music plays softly in hall".split()
    rng = np.random.default_rng(0)
    for y in range(60, 1120, 22):
        draw.text((60, y), " ".join(rng.choice(words, 12)), fill=0, font=font)
    img.save(path)


def _scores(tmp_path: Path, material: dict, *names: str) -> Path:
    folder = tmp_path / "scores"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((material["folder"] / name).read_bytes())
    return folder


# --------------------------------------------------------------------------
# 6. Non-finite recordings
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_recording_is_one_line_naming_the_file(material, tmp_path, bad):
    audio = material["audio"][:22050 * 8].astype(np.float32).copy()
    audio[22050 * 2] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, audio, 22050, subtype="FLOAT")
    for call in (lambda: load_audio(path), lambda: recording_spectrogram(path, 42),
                 lambda: audio_file_queries(path, 10, 42)):  # asr, library, the A2S server
        with pytest.raises(AsrError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "not a finite number" in message
        assert "2.00 s" in message


def test_asr_refuses_a_nan_recording_before_any_work(material, tmp_path):
    audio = material["audio"][:22050 * 8].astype(np.float32).copy()
    audio[100:200] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, audio, 22050, subtype="FLOAT")
    scores = _scores(tmp_path, material, "chorale.musicxml")
    proc = _asr("identify", str(path), "--scores", str(scores), "--model", "demo",
                env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr and "%" not in proc.stdout
    assert not (tmp_path / "cache" / "audio_sheet_retrieval").exists()  # failed before any work


# --------------------------------------------------------------------------
# 7. Pages without staff systems
# --------------------------------------------------------------------------


def test_a_text_page_has_no_staff_systems(material):
    from audio_sheet_retrieval.sheet.staff_detection import unroll_pages

    page = load_pages(material["folder"] / "letter.png")[0]
    assert detect_systems(page) == []
    out = unroll_pages([page])
    assert out.unrolled.systems == [] and out.unrolled.strip.shape[1] == 0
    # scores keep theirs
    assert len(detect_systems(material["engraved"].pages[0])) == 3


def test_text_pages_are_reported_and_left_out(demo_model, material, tmp_path):
    model, _ = demo_model
    scores = _scores(tmp_path, material, "chorale_page.png", "letter.png")
    warnings: list[str] = []
    db = library.open_library([scores], model, "test", cache=tmp_path / "lib.npz",
                              warn=warnings.append)
    assert db.piece_names == ["chorale_page"]
    assert len(warnings) == 1 and str(scores / "letter.png") in warnings[0]
    assert "no staff systems" in warnings[0] and "left out" in warnings[0]
    # read from the cache, the warning is repeated
    again: list[str] = []
    library.open_library([scores], model, "test", cache=tmp_path / "lib.npz", warn=again.append)
    assert again == warnings
    # nothing left: an error naming the file
    with pytest.raises(AsrError, match="letter.png: no staff systems"):
        library.open_library([scores / "letter.png"], model, "test", cache=tmp_path / "t.npz")


def test_asr_with_only_a_text_page_is_one_line(material, tmp_path):
    scores = _scores(tmp_path, material, "letter.png")
    proc = _asr("identify", str(material["folder"] / "recording.wav"), "--scores", str(scores),
                "--model", "demo", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "letter.png: no staff systems" in proc.stderr


# --------------------------------------------------------------------------
# 10. sheet_audio_server.py --query with a page that is not in the data layout
# --------------------------------------------------------------------------


def test_page_queries_of_pages_outside_the_data_layout(material, tmp_path):
    page = material["engraved"].pages[0]
    small = tmp_path / "scan.png"  # a smaller print than the training data's
    Image.fromarray(_smaller_print(page, 0.8)).save(small)
    queries = page_file_queries([small], 20, 160, 200)
    assert queries.shape == (20, 160, 200) and queries.dtype == np.uint8
    # two page files of one piece, and a PDF, in page order
    pdf = tmp_path / "score.pdf"
    import pymupdf

    doc = pymupdf.open()
    for _ in range(2):
        doc.new_page(width=595, height=842).insert_image(pymupdf.Rect(0, 0, 595, 842),
                                                         filename=str(small))
    doc.save(pdf)
    assert page_file_queries([small, small], 30).shape == (30, 160, 200)
    assert page_file_queries([pdf], 30).shape == (30, 160, 200)
    with pytest.raises(AsrError, match="letter.png: no staff systems"):
        page_file_queries([material["folder"] / "letter.png"], 10)


def test_sheet_audio_server_query_of_a_page_outside_the_data_root(built_root, material, tmp_path):
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"train": ["bach__bwv846"], "valid": ["bach__bwv846"],
                                     "test": ["bach__bwv846", "bach__bwv259"]}))
    page = tmp_path / "page.png"  # PIECE's page, smaller than the data's, not in the data root
    Image.fromarray(_smaller_print(material["engraved"].pages[0], 0.8)).save(page)
    assert not list(built_root.rglob("page.png"))
    proc = subprocess.run(
        [sys.executable, "sheet_audio_server.py", "--model", "models/demo.py", "--pretrained",
         "--config", "exp_configs/demo.yaml", "--train_split", str(split), "--data_root",
         str(built_root), "--exp_root", str(tmp_path / "exp"), "--test_synth", "TimGM6mbPiano",
         "--query", str(page), "--n_queries", "30"],
        capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "30 sheet snippets" in proc.stdout
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.strip().startswith(("1 ", "2 "))]
    assert [r[-1] for r in rows] == ["bach__bwv259", "bach__bwv846"], proc.stdout  # PIECE first


# --------------------------------------------------------------------------
# 11. Absurd images: bounded work, one line
# --------------------------------------------------------------------------

_MEASURE = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    from audio_sheet_retrieval import library
    from audio_sheet_retrieval.errors import AsrError
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # (a forked child starts at its parent's)
    try:
        library.unroll_score_file(sys.argv[1])
        message = None
    except AsrError as err:
        message = str(err)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"message": message, "grown_mb": grown / 1024}))
""")


@pytest.mark.parametrize("size", [(20, 20000), (20000, 20)])
def test_a_needle_image_is_refused_in_bounded_memory(tmp_path, size):
    path = tmp_path / "needle.png"
    Image.new("L", size, 255).save(path)
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]  # no MemoryError
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["message"] and str(path) in result["message"] and "not a score page" in result["message"]
    assert "\n" not in result["message"]
    assert result["grown_mb"] < 250, result  # reading the file and the modules it needs


def test_huge_images_and_pdf_pages_are_refused_before_decoding(tmp_path):
    import pymupdf

    big = tmp_path / "big.png"
    Image.new("1", (9000, 9000), 1).save(big)  # 81 million pixels, a small file
    with pytest.raises(AsrError, match="million pixels"):
        load_pages(big)
    pdf = tmp_path / "scroll.pdf"
    doc = pymupdf.open()
    doc.new_page(width=20, height=20000)
    doc.save(pdf)
    with pytest.raises(AsrError, match="not a score page"):
        load_pages(pdf)


# --------------------------------------------------------------------------
# The library cache: the user's cache folder, keyed by the set of scores
# --------------------------------------------------------------------------


def test_library_cache_is_in_the_user_cache_not_beside_the_scores(demo_model, material, tmp_path,
                                                                 monkeypatch):
    model, _ = demo_model
    scores = _scores(tmp_path, material, "chorale.musicxml")
    before = sorted(p.name for p in scores.iterdir())
    scores.chmod(0o555)  # a read-only folder (root ignores it; the listing is checked too)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    try:
        db = library.open_library([scores], model, "test")
    finally:
        scores.chmod(0o755)
    assert db.piece_names == ["chorale"]
    assert sorted(p.name for p in scores.iterdir()) == before
    cached = list((tmp_path / "xdg" / "audio_sheet_retrieval").glob("library-*.npz"))
    assert len(cached) == 1
    # an unwritable cache place: a warning, and the library all the same
    warnings: list[str] = []
    (tmp_path / "a_file").write_text("x")
    db = library.open_library([scores], model, "test", cache=tmp_path / "a_file" / "lib.npz",
                              warn=warnings.append)
    assert db.piece_names == ["chorale"] and len(warnings) == 1
    assert "cannot write the library cache" in warnings[0] and "--cache" in warnings[0]


def test_a_truncated_cache_is_rebuilt_with_a_warning(demo_model, material, tmp_path):
    model, _ = demo_model
    scores = _scores(tmp_path, material, "chorale.musicxml")
    cache = tmp_path / "lib.npz"
    first = library.open_library([scores], model, "test", cache=cache)
    data = cache.read_bytes()
    cache.write_bytes(data[:len(data) // 2])
    warnings: list[str] = []
    again = library.open_library([scores], model, "test", cache=cache, warn=warnings.append)
    assert len(warnings) == 1 and str(cache) in warnings[0] and "rebuilding" in warnings[0]
    assert "--init" not in warnings[0]
    np.testing.assert_allclose(again.codes, first.codes, atol=1e-5)
    assert cache.read_bytes() != data[:len(data) // 2]  # a valid cache again


def test_each_set_of_scores_has_its_own_cache(demo_model, material, tmp_path, monkeypatch):
    model, _ = demo_model
    scores = _scores(tmp_path, material, "chorale.musicxml", "chorale_page.png")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    builds: list[list[str]] = []
    build = library.build_library

    def counting(sources, *args, **kwargs):
        builds.append([s.name for s in sources])
        return build(sources, *args, **kwargs)

    monkeypatch.setattr(library, "build_library", counting)
    one, two = [scores / "chorale.musicxml"], [scores / "chorale_page.png"]
    for paths in (one, two, one, two):
        library.open_library(paths, model, "test")
    assert builds == [["chorale"], ["chorale_page"]]  # built once each, then read


def test_library_snippets_have_the_models_size(material, tmp_path):
    from audio_sheet_retrieval.config.exp_config import load_config
    from audio_sheet_retrieval.nn.module_loader import load_model_module

    config = load_config(REPO / "exp_configs" / "demo.yaml")
    config.update(STAFF_HEIGHT=120, SHEET_CONTEXT=150)
    model = load_model_module(REPO / "models" / "demo.py").build_model(config).eval()
    scores = _scores(tmp_path, material, "chorale.musicxml")
    db = library.open_library([scores], model, "small", cache=tmp_path / "lib.npz")
    assert db.piece_names == ["chorale"] and len(db) > 10
    assert json.loads(json.dumps(db.fingerprint))["sheet_shape"] == "120x150"


# --------------------------------------------------------------------------
# Exit status: runtime errors 1, usage errors 2
# --------------------------------------------------------------------------


def test_asr_exit_status(material, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    scores = _scores(tmp_path, material, "chorale.musicxml")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    failed = _asr("identify", str(text), "--scores", str(scores), "--model", "demo", env=env)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and str(text) in failed.stderr
    recording = str(material["folder"] / "recording.wav")
    for args in ([str(tmp_path / "missing.wav"), "--scores", str(scores)],
                 [recording, "--scores", str(tmp_path / "nowhere")],
                 [recording, "--scores", str(scores), "--k", "0"],
                 [recording, "--scores", str(scores), "--model", "no_such_model"],
                 [recording, "--scores", str(scores), "--params", "x.pt"]):
        proc = _asr("identify", *args, env=env)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert _asr("identify", recording, env=env).returncode == 2  # argparse: --scores is required


# --------------------------------------------------------------------------
# The user's pages: grouping, staff size, grand staves, the ranking figure
# --------------------------------------------------------------------------


def test_page_files_of_one_score_are_grouped(tmp_path):
    folder = tmp_path / "scores"
    (folder / "op2").mkdir(parents=True)
    for name in ("op1_p1.png", "op1_p2.png", "op1_p10.png", "Sonata-Page3.jpg", "Sonata-page1.jpg",
                 "waltz.png", "bwv-846.png", "a b.musicxml", "op2/2.png", "op2/10.png", "op2/1.pdf"):
        (folder / name).write_bytes(b"")
    scores = {s.name: [f.name for f in s.files] for s in library.find_scores([folder])}
    assert scores == {"a b": ["a b.musicxml"], "bwv-846": ["bwv-846.png"], "waltz": ["waltz.png"],
                      "op1": ["op1_p1.png", "op1_p2.png", "op1_p10.png"],
                      "Sonata": ["Sonata-page1.jpg", "Sonata-Page3.jpg"],
                      "op2": ["1.pdf", "2.png", "10.png"]}


def test_pages_of_one_score_make_one_piece(demo_model, material, tmp_path):
    model, _ = demo_model
    folder = tmp_path / "scores"
    folder.mkdir()
    engraved = engrave_verovio(load_musicxml(resolve(["bach/bwv846"])[0]))  # two pages
    assert len(engraved.pages) == 2
    for i, page in enumerate(engraved.pages, start=1):
        Image.fromarray(page).save(folder / f"prelude_p{i}.png")
    (folder / "chorale.png").write_bytes((material["folder"] / "chorale_page.png").read_bytes())
    db = library.open_library([folder], model, "test", cache=tmp_path / "lib.npz")
    assert sorted(db.piece_names) == ["chorale", "prelude"]
    prelude = db.locations[db.piece_ids == db.piece_names.index("prelude")]
    assert set(prelude[:, 0].astype(int)) == {0, 1}  # both pages, one piece


def test_trained_line_distance_is_what_the_detector_measures_on_verovio_pages(material):
    from audio_sheet_retrieval.sheet import staff_detection
    from audio_sheet_retrieval.sheet.staff_detection import measure_line_distance

    assert staff_detection.TRAINED_LINE_DISTANCE_PX == TRAINED_LINE_DISTANCE_PX
    measured = [measure_line_distance(page) for page in material["engraved"].pages]
    measured += [measure_line_distance(page) for page in
                 engrave_verovio(load_musicxml(resolve(["bach/bwv846"])[0])).pages]
    assert abs(np.median(measured) / TRAINED_LINE_DISTANCE_PX - 1) < 0.01, measured


@pytest.mark.parametrize("factor", [0.7, 0.87, 1.4])
def test_pages_are_scaled_to_the_trained_staff_size(material, factor):
    from audio_sheet_retrieval.sheet.staff_detection import unroll_pages

    page = _resized(material["engraved"].pages[0], factor)
    out = unroll_pages([page], line_distance_px=TRAINED_LINE_DISTANCE_PX, staves_per_system=2)
    assert abs(out.scales[0] * factor - 1) < 0.03
    assert len(out.unrolled.systems) == 3 and out.staff_counts == [2, 2, 2]
    # the strip shows staves of the trained size: its systems' first-to-last line height
    heights = [b.bottom - b.top for b in out.unrolled.systems]
    truth = [s.staff_lines[-1] - s.staff_lines[0] for s in material["engraved"].systems]
    assert np.allclose(heights, truth, rtol=0.03)
    # the boxes in the page as given keep the page's own size
    assert np.allclose([b.bottom - b.top for b in out.boxes], np.multiply(truth, factor), rtol=0.03)
    # and so does the library's path, from page files of the same width (835 px)
    assert library.unroll_score_file(material["folder"] / "chorale_page.png").page_scales == [1.0]
    path = material["folder"].parent / f"small_{factor}.png"
    Image.fromarray(_smaller_print(material["engraved"].pages[0], min(factor, 0.9))).save(path)
    scaled = library.unroll_score_file(path)
    assert abs(scaled.page_scales[0] * min(factor, 0.9) - 1) < 0.03
    assert len(scaled.unrolled.systems) == 3


def test_lilypond_scores_are_scaled_to_the_trained_staff_size(tmp_path):
    import shutil

    from audio_sheet_retrieval.sheet.staff_detection import measure_line_distance

    if shutil.which("lilypond") is None:
        pytest.skip("LilyPond is not installed")
    ly = tmp_path / "minuet.ly"
    ly.write_text(textwrap.dedent(r"""
        \version "2.24.0"
        #(set-global-staff-size 17)
        \score {
          \new PianoStaff <<
            \new Staff { \clef treble \time 3/4 \repeat unfold 24 { d''4 g'8 a' b' c'' } }
            \new Staff { \clef bass \time 3/4 \repeat unfold 24 { <g b d'>2 a4 } }
          >>
          \layout { }
          \midi { }
        }
    """))
    unrolled = library.unroll_score_file(ly)
    assert 1.12 < unrolled.page_scales[0] < 1.28  # staves of 17 pt: 0.85 of verovio's
    assert measure_line_distance(unrolled.unrolled.strip) == pytest.approx(TRAINED_LINE_DISTANCE_PX,
                                                                           rel=0.03)
    raw = library.unroll_score_file(ly, line_distance_px=None)
    assert raw.page_scales[0] == 1.0
    assert measure_line_distance(raw.unrolled.strip) < 0.9 * TRAINED_LINE_DISTANCE_PX


def test_a_quartet_page_is_reported_not_ranked(demo_model, material, tmp_path):
    model, _ = demo_model
    assert {len(s.staff_lines) // 5 for s in material["quartet"].systems} == {4}
    scores = _scores(tmp_path, material, "chorale_page.png", "quartet.png")
    warnings: list[str] = []
    db = library.open_library([scores], model, "test", cache=tmp_path / "lib.npz",
                              warn=warnings.append)
    assert db.piece_names == ["chorale_page"]
    assert len(warnings) == 1 and str(scores / "quartet.png") in warnings[0]
    assert "4 staves" in warnings[0] and "not a piano score" in warnings[0]
    # alone, as a score file or a server query: an error naming it
    with pytest.raises(AsrError, match="quartet.png: not a piano score"):
        library.unroll_score_file(scores / "quartet.png")
    with pytest.raises(AsrError, match="quartet.png: not a piano score"):
        page_file_queries([scores / "quartet.png"], 10)
    # the same score as MusicXML: engraved on four staves, refused alike
    satb = tmp_path / "satb.musicxml"
    satb.write_text(load_musicxml(PieceSource("satb", resolve([PIECE])[0].path, reduce=False)))
    with pytest.raises(AsrError, match="satb.musicxml: not a piano score"):
        library.unroll_score_file(satb)


def test_a_few_odd_systems_are_left_out_with_a_warning(material):
    from audio_sheet_retrieval.sheet.staff_detection import check_system_staves, unroll_pages

    warnings: list[str] = []
    check_system_staves("x.png", [2, 2, 2, 1], warnings.append)
    assert warnings == ["x.png: 1 of its 4 systems have 1 staff, not 2 (a piano grand staff); "
                        "they are left out"]
    # a page with a grand-staff system and a four-staff one keeps the former
    pages = [material["engraved"].pages[0], material["quartet"].pages[0]]
    out = unroll_pages(pages, staves_per_system=2)
    assert out.staff_counts == [2, 2, 2] and out.left_out == [4, 4, 4]
    assert {b.page for b in out.unrolled.systems} == {0}


def test_identify_prints_the_figure_it_ranks_by():
    from audio_sheet_retrieval.eval.search import identify
    from audio_sheet_retrieval.eval.snippet_db import SnippetDB

    # piece "long": 90 snippets, piece "short": 10; queries near both, more votes for "long"
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2, 16))
    codes = np.concatenate([base[0] + 0.01 * rng.normal(size=(90, 16)),
                            base[1] + 0.01 * rng.normal(size=(10, 16))])
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    db = SnippetDB("sheet", codes.astype(np.float32), np.repeat([0, 1], [90, 10]), ["long", "short"])
    queries = np.concatenate([codes[:6], codes[90:94]])
    ranking = identify(queries, db, k=5, vote_norm="size")
    assert list(ranking.votes) == [30, 20]
    table = library.format_ranking(ranking).splitlines()
    assert table[0].split()[:2] == ["rank", "votes/snippet"]
    rows = [line.split() for line in table[1:]]
    assert [r[-1] for r in rows] == ["short", "long"]  # 20/10 before 30/90
    figures = [float(r[1]) for r in rows]
    assert figures == sorted(figures, reverse=True) == [2.0, pytest.approx(30 / 90, abs=1e-3)]
    assert [int(r[2]) for r in rows] == [20, 30] and [int(r[3]) for r in rows] == [10, 90]
