"""Fault injection for the data builder: nothing lost, nothing mixed, nothing left running.

Each test provokes one way the builder used to destroy or corrupt data
(issue 13, "Data loss and corruption" 1-3 and 9, and the data-format version):
score names that leave nothing of themselves, two builds into one root, a
killed parallel build, growing collections and their splits, absurd options,
pieces of an older data format.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from audio_sheet_retrieval.build.dataset import build_dataset, make_splits, write_splits
from audio_sheet_retrieval.build.pipeline import BuildOptions, stale_reason
from audio_sheet_retrieval.build.sources import corpus_names, piece_name, resolve
from audio_sheet_retrieval.build.workspace import (
    WORK_DIR,
    RootBusyError,
    UnsafeRemovalError,
    Workspace,
    remove_work_tree,
)
from audio_sheet_retrieval.data.layout import DATA_FORMAT_VERSION, FORMAT_KEY, PIECE_NAME
from audio_sheet_retrieval.data.msmd import Piece
from audio_sheet_retrieval.data.splits import demo_split, load_split, split_digest
from audio_sheet_retrieval.digests import file_digest
from audio_sheet_retrieval.errors import AsrError

REPO = Path(__file__).resolve().parents[1]
OPTIONS = BuildOptions(synths=("TimGM6mbPiano",), tempi=(1.0,), keep_audio=False)
CLI_OPTIONS = ("--synths", "TimGM6mbPiano", "--tempi", "1.0", "--no_audio")
SHORT = ("bach/bwv259", "bach/bwv66.6", "bach/bwv165.6", "bach/bwv93.7")
"""Short chorales (one page each)."""


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "build_dataset.py"), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env=env)


def _score(folder: Path, name: str, corpus: str = "bach/bwv259") -> Path:
    """A copy of a short corpus score under a file name of our choice."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copyfile(corpus_names()[corpus], path)
    return path


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("error:"), proc.stderr
    return err


@pytest.fixture(scope="module")
def one_piece(tmp_path_factory) -> Path:
    """A data root with bach__bwv259 built by the real pipeline (one synth, one tempo)."""
    root = tmp_path_factory.mktemp("one_piece")
    reports, _ = build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert [r.status for r in reports] == ["built"], reports
    return root


def _copy_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- 1. piece names, and nothing removed that the builder did not create ----------------------

def test_piece_names_are_never_empty_and_keep_files_apart(tmp_path):
    files = [_score(tmp_path, n) for n in ("Прелюдия.mxl", "___.mxl", "a b.mxl", "a-b.mxl",
                                           "a_b.mxl", "..mxl")]
    files += [_score(tmp_path / "x", "p.mxl"), _score(tmp_path / "y", "p.mxl", "bach/bwv66.6")]
    sources = resolve([str(f) for f in files] + [str(files[0])] + ["bach/bwv259"])
    names = [s.name for s in sources]
    assert len(sources) == len(files) + 1  # the repeated file counts once
    assert len(set(names)) == len(names), names
    assert all(PIECE_NAME.match(n) for n in names), names
    by_file = {s.path.name if s.path.parent == tmp_path else s.path.parent.name: s.name
               for s in sources}
    assert by_file["a-b.mxl"] == "a-b" and by_file["Прелюдия.mxl"].startswith("Preliudiia-")
    assert "bach__bwv259" in names  # corpus names are as before
    assert piece_name("bach/bwv1.6") == "bach__bwv1-6"


def test_a_nameless_score_never_removes_the_data_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "precious.txt").write_text("the only copy")
    (root / "my_notes").mkdir()
    (root / "my_notes" / "n.txt").write_text("keep")
    reports, _ = build_dataset(resolve([str(_score(tmp_path, "___.mxl"))]), root, OPTIONS)
    assert [r.status for r in reports] == ["built"], reports
    assert (root / "precious.txt").read_text() == "the only copy"
    assert (root / "my_notes" / "n.txt").read_text() == "keep"
    assert reports[0].name.startswith("piece-") and (root / reports[0].name / "meta.yml").is_file()


def test_a_folder_the_builder_did_not_write_is_never_replaced(tmp_path):
    root = tmp_path / "root"
    (root / "bach__bwv259").mkdir(parents=True)
    (root / "bach__bwv259" / "mine.txt").write_text("not the builder's")
    reports, manifest = build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert [r.status for r in reports] == ["failed"]
    assert "did not write it" in manifest["last_run"]["failed"]["bach__bwv259"]
    assert sorted(p.name for p in (root / "bach__bwv259").iterdir()) == ["mine.txt"]


def test_another_score_of_the_same_stem_is_not_already_built(tmp_path):
    root = tmp_path / "root"
    first = _score(tmp_path / "x", "prelude.mxl", "bach/bwv259")
    second = _score(tmp_path / "y", "prelude.mxl", "bach/bwv66.6")
    assert [r.status for r in build_dataset(resolve([str(first)]), root, OPTIONS)[0]] == ["built"]
    assert [r.status for r in build_dataset(resolve([str(first)]), root, OPTIONS)[0]] == ["skipped"]
    reports, _ = build_dataset(resolve([str(second)]), root, OPTIONS)
    assert [(r.name, r.status) for r in reports] == [("prelude", "built")]
    meta = yaml.safe_load((root / "prelude" / "meta.yml").read_text())
    assert meta["source_sha1"] == file_digest(second, "sha1") != file_digest(first, "sha1")


def test_removal_is_confined_to_the_work_folder(tmp_path):
    root = tmp_path / "root"
    (root / WORK_DIR / "run" / "piece").mkdir(parents=True)
    (root / "piece").mkdir()
    for victim in (root, root / "piece", root / WORK_DIR, tmp_path, Path("/"),
                   root / WORK_DIR / ".." / "piece"):
        with pytest.raises(UnsafeRemovalError):
            remove_work_tree(victim, root)
    assert (root / "piece").is_dir()
    remove_work_tree(root / WORK_DIR / "run", root)
    assert not (root / WORK_DIR / "run").exists()
    # a work folder that is a link could lead anywhere: nothing under it is removed
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "run").mkdir(parents=True)
    shutil.rmtree(root / WORK_DIR)
    (root / WORK_DIR).symlink_to(elsewhere)
    with pytest.raises(UnsafeRemovalError):
        remove_work_tree(root / WORK_DIR / "run", root)
    with pytest.raises(AsrError, match="not a folder"):
        build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert (elsewhere / "run").is_dir()


# --- 2. one builder per root, complete pieces only, workers die with their parent -------------

def test_a_second_builder_is_refused_with_one_line(tmp_path):
    root = tmp_path / "root"
    with Workspace(root):
        with pytest.raises(RootBusyError, match="another build"):
            build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
        proc = _cli("--root", str(root), "--pieces", "bach/bwv259", *CLI_OPTIONS)
    assert proc.returncode == 1, proc.stderr
    assert "another build" in _one_line_error(proc)
    assert not (root / "bach__bwv259").exists()


def test_only_complete_pieces_count_as_built(one_piece, tmp_path):
    root = _copy_root(one_piece, tmp_path / "root")
    shutil.rmtree(root / "bach__bwv259" / "scores")  # what two racing builds used to leave
    reports, _ = build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert [r.status for r in reports] == ["built"]
    src = resolve(["bach/bwv259"])[0]
    assert stale_reason(root / "bach__bwv259", src, OPTIONS, file_digest(src.path, "sha1")) is None
    assert not (root / WORK_DIR).exists()


def test_stale_work_folders_are_cleared_under_the_lock(one_piece, tmp_path):
    root = _copy_root(one_piece, tmp_path / "root")
    stale = root / WORK_DIR / "12345-deadbeef" / "bach__bwv259"
    stale.mkdir(parents=True)
    (stale / "half.npy").write_bytes(b"x")
    reports, _ = build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert [r.status for r in reports] == ["skipped"]
    assert not (root / WORK_DIR).exists()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_parallel_build_leaves_no_workers_and_resumes(tmp_path):
    root = tmp_path / "root"
    # enough pieces that the build cannot end before it is killed, however idle the machine
    pieces = (*SHORT, "bach/bwv1.6", "bach/bwv2.6", "bach/bwv3.6", "bach/bwv4.8", "bach/bwv5.7",
              "bach/bwv6.6", "bach/bwv7.7", "bach/bwv8.6")
    args = ("--root", str(root), "--pieces", *pieces, "--jobs", "2", *CLI_OPTIONS)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, str(REPO / "build_dataset.py"), *args], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and parent.poll() is None:
            # read here, not right after Popen: until the exec is done, /proc shows the old command
            cmdline = Path(f"/proc/{parent.pid}/cmdline").read_bytes()
            workers = [c for c in _children(parent.pid)
                       if Path(f"/proc/{c}/cmdline").read_bytes() == cmdline]
            if len(workers) >= 2 and any((root / WORK_DIR).glob("*/*")):
                break
            time.sleep(0.2)
        assert parent.poll() is None and len(workers) >= 2, "the build never started its workers"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        survivors = [w for w in workers if _alive(w)]
        assert not survivors, f"workers {survivors} outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for w in workers:  # only the workers of the build this test started
            if _alive(w):
                os.kill(w, signal.SIGKILL)
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sources = resolve(list(SHORT))
    for src in sources:
        assert stale_reason(root / src.name, src, OPTIONS, file_digest(src.path, "sha1")) is None, src.name
    assert not (root / WORK_DIR).exists()


# --- 3. stable splits, never rewritten ---------------------------------------------------------

def test_adding_pieces_never_moves_a_piece_to_another_kind():
    names = [f"composer__work{i:03d}" for i in range(300)]
    small, large = make_splits(names[:120]), make_splits(names)
    kind = {n: k for k, ns in large.items() for n in ns}
    assert all(kind[n] == k for k, ns in small.items() for n in ns)
    sizes = {k: len(v) for k, v in large.items()}
    assert 40 <= sizes["test"] <= 80 and 8 <= sizes["valid"] <= 30, sizes  # 20 % and 6 % of 300


def _fake_pieces(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "meta.yml").write_text("title: x\n")  # a piece of the real MSMD: no marker


def test_an_existing_split_file_is_never_rewritten(tmp_path):
    root = tmp_path / "root"
    names = [f"p{i:03d}" for i in range(60)]
    _fake_pieces(root, names[:40])
    first = write_splits(root)
    assert first["all"] == root / "splits" / "all_split.yaml"
    before = {k: p.read_bytes() for k, p in first.items()}
    assert write_splits(root) == first  # same pieces: the same files, untouched
    _fake_pieces(root, names[40:])
    second = write_splits(root)
    assert {k: p.read_bytes() for k, p in first.items()} == before
    assert second["all"] != first["all"] and second["all"].parent == root / "splits"
    old, new = load_split(first["all"]), load_split(second["all"])
    assert sorted(sum(new.values(), [])) == names
    assert all(set(old[k]) <= set(new[k]) for k in old)
    assert second["all"].name == f"all_split-{split_digest(new)[:8]}.yaml"
    demo = load_split(second["demo"])
    assert all(set(demo[k]) <= set(new[k]) for k in demo)


def test_split_digest_is_a_content_digest(tmp_path):
    split = {"train": ["b", "a"], "valid": ["c"], "test": ["d"]}
    digest = split_digest(split)
    assert len(digest) == 40 and digest == split_digest({"test": ["d"], "valid": ["c"],
                                                         "train": ["a", "b"]})
    assert digest != split_digest({"train": ["a"], "valid": ["c"], "test": ["d", "b"]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(split))
    assert split_digest(load_split(path)) == digest
    path.write_text("train: [a, 3]\n")
    with pytest.raises(AsrError, match="not a piece name"):
        load_split(path)


def test_demo_split_stays_inside_its_kinds():
    split = make_splits([f"p{i:03d}" for i in range(200)])
    demo = demo_split(split)
    assert all(set(demo[k]) <= set(split[k]) for k in split)
    assert len(demo["train"]) == 24 and len(demo["test"]) == 8


# --- 9. options -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"tempi": (0.0,)}, {"tempi": (-1.0,)}, {"tempi": (1e-3,)}, {"tempi": (float("nan"),)},
    {"tempi": (float("inf"),)}, {"tempi": (100.0,)}, {"tempi": ()}, {"tempi": (1.0, 1.0)},
    {"synths": ()}, {"synths": ("NoSuchPiano",)}, {"synths": ("TimGM6mbPiano",) * 2},
    {"engraver": "sibelius"},
])
def test_bad_build_options_are_refused(kwargs):
    with pytest.raises(ValueError):
        BuildOptions(**kwargs)


@pytest.mark.parametrize("flags", [("--tempi", "0"), ("--tempi", "-1"), ("--tempi", "0.001"),
                                   ("--tempi", "nan"), ("--tempi", "abc"), ("--jobs", "0")])
def test_cli_refuses_bad_options_with_one_line(tmp_path, flags):
    root = tmp_path / "root"
    proc = _cli("--root", str(root), "--pieces", "bach/bwv259", "--synths", "TimGM6mbPiano",
                *flags, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert flags[0].lstrip("-") in _one_line_error(proc)
    assert not root.exists()


# --- data-format version --------------------------------------------------------------------

def _set_meta(folder: Path, **changes) -> None:
    meta = yaml.safe_load((folder / "meta.yml").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (folder / "meta.yml").write_text(yaml.safe_dump(meta, sort_keys=False))


def test_readers_refuse_a_piece_of_an_older_format(one_piece, tmp_path):
    root = _copy_root(one_piece, tmp_path / "root")
    assert Piece(root, "bach__bwv259").meta[FORMAT_KEY] == DATA_FORMAT_VERSION
    _set_meta(root / "bach__bwv259", **{FORMAT_KEY: None})  # what the first builder wrote
    with pytest.raises(AsrError, match="rebuild it with build_dataset.py") as err:
        Piece(root, "bach__bwv259")
    assert "\n" not in str(err.value) and "data format 1" in str(err.value)
    assert yaml.safe_load((root / "manifest.yaml").read_text())[FORMAT_KEY] == DATA_FORMAT_VERSION


def test_readers_accept_a_piece_of_the_real_msmd(one_piece, tmp_path):
    root = _copy_root(one_piece, tmp_path / "root")
    (root / "bach__bwv259" / "meta.yml").write_text("title: BWV 259\ncomposer: Bach\n")
    piece = Piece(root, "bach__bwv259")
    assert len(piece.load_score().load_images()) == 1
    (root / "bach__bwv259" / "meta.yml").unlink()
    assert Piece(root, "bach__bwv259").available_scores == ["bach__bwv259_verovio"]


def test_builder_rebuilds_a_piece_of_an_older_format(one_piece, tmp_path):
    root = _copy_root(one_piece, tmp_path / "root")
    _set_meta(root / "bach__bwv259", **{FORMAT_KEY: DATA_FORMAT_VERSION - 1})
    reports, manifest = build_dataset(resolve(["bach/bwv259"]), root, OPTIONS)
    assert [r.status for r in reports] == ["built"]
    assert Piece(root, "bach__bwv259").meta[FORMAT_KEY] == DATA_FORMAT_VERSION
    assert manifest["totals"]["pieces"] == 1


def test_default_collection_keeps_the_shipped_models_split():
    """The default collection splits as the shipped models were trained: their test pieces stay test."""
    from audio_sheet_retrieval.build.sources import default_specs
    from audio_sheet_retrieval.data.splits import reference_kinds
    from audio_sheet_retrieval.pretrained import PRETRAINED_DIR

    split = make_splits([piece_name(s) for s in default_specs()])
    kind = {n: k for k, ns in split.items() for n in ns}
    assert len(reference_kinds()) == 419
    assert all(kind[n] == k for n, k in reference_kinds().items())
    for model in ("mutopia_ccal_cont_rsz_dense_att", "mutopia_ccal_cont_rsz_dense"):
        meta = yaml.safe_load((PRETRAINED_DIR / model / "meta.yaml").read_text())
        assert sorted(meta["test_pieces"]) == sorted(n for n, k in reference_kinds().items()
                                                     if k == "test")
