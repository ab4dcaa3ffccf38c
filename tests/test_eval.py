"""Evaluation: metrics, snippet retrieval, piece identification, result files and scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from audio_sheet_retrieval.data.mutopia import load_pools
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.metrics import (
    mean_rank,
    mean_reciprocal_rank,
    median_rank,
    ranks_from_similarity,
    recall_at_k,
    retrieval_metrics,
)
from audio_sheet_retrieval.eval.piece_id import evaluate_piece_id
from audio_sheet_retrieval.eval.queries import audio_file_queries, page_file_queries
from audio_sheet_retrieval.eval.search import identify, rank_pieces
from audio_sheet_retrieval.eval.snippet_db import SnippetDB, build_db, db_fingerprint, open_db
from audio_sheet_retrieval.eval.snippet_retrieval import (
    evenly_spaced,
    partner_ranks,
    snippet_retrieval,
)
from audio_sheet_retrieval.eval.summary import collect_results
from audio_sheet_retrieval.nn.module_loader import load_model_module

REPO = Path(__file__).resolve().parents[1]
PIECES = ["bach__bwv259", "bach__bwv846"]


# ------------------------------------------------------------------ metrics


def test_metrics_on_hand_made_cases():
    sim = np.array([[0.9, 0.1, 0.2],    # partner first
                    [0.5, 0.5, 0.1],    # tie with candidate 0: pessimistic -> rank 2
                    [0.8, 0.7, 0.3]])   # two better candidates -> rank 3
    ranks = ranks_from_similarity(sim)
    np.testing.assert_array_equal(ranks, [1, 2, 3])
    assert recall_at_k(ranks, 1) == pytest.approx(100 / 3)
    assert recall_at_k(ranks, 2) == pytest.approx(200 / 3)
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert median_rank(ranks) == 2.0 and mean_rank(ranks) == 2.0
    m = retrieval_metrics(np.array([1, 1, 30, 4]))
    assert (m["R@1"], m["R@5"], m["R@10"], m["R@25"], m["MedR"], m["n"]) == (50, 75, 75, 75, 2.5, 4)
    # all-equal similarities: every query ranks last
    np.testing.assert_array_equal(ranks_from_similarity(np.ones((3, 5))), [5, 5, 5])
    # more candidates than queries
    np.testing.assert_array_equal(ranks_from_similarity(np.array([[1.0, 0.0, 2.0]])), [2])


@pytest.mark.parametrize("bad", [np.array([]), np.array([0, 1]), np.array([1.5, 2.0]),
                                 np.array([[1, 2]])])
def test_metrics_reject_bad_ranks(bad):
    with pytest.raises(ValueError):
        retrieval_metrics(bad)


def test_similarity_and_k_validation():
    with pytest.raises(ValueError):
        ranks_from_similarity(np.ones((3, 2)))  # more queries than candidates
    with pytest.raises(ValueError):
        ranks_from_similarity(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        ranks_from_similarity(np.ones(3))
    with pytest.raises(ValueError):
        recall_at_k(np.array([1, 2]), 0)
    with pytest.raises(ValueError):
        partner_ranks(np.ones((3, 4)), np.ones((2, 4)))


def test_partner_ranks_match_the_dense_metric():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(300, 8))
    c = rng.normal(size=(400, 8))
    c[5] = c[7] = q[5]  # an exact tie with the partner
    ranks, partner = partner_ranks(q, c, block_size=64)
    np.testing.assert_array_equal(ranks, ranks_from_similarity(q @ c.T))
    assert ranks[5] >= 2
    np.testing.assert_allclose(partner, np.einsum("ij,ij->i", q, c[:300]))


def test_evenly_spaced_is_unique_and_spans_the_pool():
    np.testing.assert_array_equal(evenly_spaced(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(evenly_spaced(5, 2000), np.arange(5))  # no repeats
    np.testing.assert_array_equal(evenly_spaced(7, 1), [0])


# ------------------------------------------------------------------ snippet retrieval


@pytest.fixture(scope="module")
def test_pool(built_root, test_config, tmp_path_factory):
    split = tmp_path_factory.mktemp("eval_split") / "eval_test_split.yaml"
    split.write_text(yaml.safe_dump({"train": PIECES, "valid": PIECES[:1], "test": PIECES}))
    return load_pools(built_root, split, test_config, kinds=("test",), progress=False)["test"]


def _random_model(config):
    torch.manual_seed(0)
    return load_model_module(REPO / "models" / "demo.py").build_model(config)


@pytest.mark.parametrize("direction", ["S2A", "A2S"])
def test_snippet_retrieval_matches_brute_force(test_pool, test_config, direction):
    torch.set_num_threads(1)
    model = _random_model(test_config)
    result = snippet_retrieval(model, test_pool, n_test=60, direction=direction, batch_size=16,
                               progress=False)
    idx = evenly_spaced(len(test_pool), 60)
    np.testing.assert_array_equal(result.indices, idx)
    # reference: embed all pairs at once, then a double loop over candidates
    sheets, specs = test_pool.pairs(idx)
    zs = model.embed_sheet(sheets, batch_size=16).numpy().astype(np.float64)
    za = model.embed_spec(specs, batch_size=16).numpy().astype(np.float64)
    queries, candidates = (zs, za) if direction == "S2A" else (za, zs)
    ref = []
    for i, q in enumerate(queries):
        true = float(np.dot(q, candidates[i]))
        ref.append(1 + sum(float(np.dot(q, c)) >= true - 1e-9 for j, c in enumerate(candidates)
                           if j != i))
    np.testing.assert_array_equal(result.ranks, ref)
    assert result.metrics["n"] == len(idx) and set(result.pieces) <= set(PIECES)
    assert result.metrics["MRR"] == pytest.approx(np.mean(1.0 / np.asarray(ref)))


# ------------------------------------------------------------------ piece identification


def _synthetic_db(n_pieces: int, per_piece: int, embed):
    """Items are (piece id, noise) rows; an embedding decides what it sees of them."""
    rng = np.random.default_rng(1)
    names = [f"piece{p:03d}" for p in range(n_pieces)]
    ids = np.repeat(np.arange(n_pieces), per_piece)
    items = np.c_[ids, rng.normal(size=len(ids))]
    db = build_db("sheet", names, [(items[lo:lo + 100], ids[lo:lo + 100])
                                   for lo in range(0, len(ids), 100)], embed)
    queries = [(name, np.c_[np.full(100, p), rng.normal(size=100)]) for p, name in enumerate(names)]
    return db, queries


def _oracle(items: np.ndarray, dim: int = 64) -> np.ndarray:
    codes = np.zeros((len(items), dim), np.float32)
    codes[np.arange(len(items)), items[:, 0].astype(int)] = 1.0
    return codes


def _random_embedding(items: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(np.abs(items[:, 1] * 1e6).astype(np.int64))
    codes = rng.normal(size=(len(items), 32)).astype(np.float32)
    return codes / np.linalg.norm(codes, axis=1, keepdims=True)


def test_oracle_embedding_ranks_every_piece_first():
    db, queries = _synthetic_db(40, 30, _oracle)
    result = evaluate_piece_id(queries, _oracle, db, k=25, progress=False)
    assert np.all(result.ranks == 1) and result.summary["MRR"] == 1.0
    assert result.summary["rank_1"] == 40 and result.summary["ratio_gt_10"] == 0.0


def test_random_embedding_is_near_chance():
    n = 60
    db, queries = _synthetic_db(n, 30, _random_embedding)
    result = evaluate_piece_id(queries, _random_embedding, db, k=25, progress=False)
    # chance: the true rank is uniform on 1..n (mean 30.5, std of the mean ~2.2)
    assert 22 < result.ranks.mean() < 39
    assert result.summary["rank_1"] <= 5
    assert result.summary["rank_le_10"] + result.summary["rank_gt_10"] == n


def test_vote_ranking_is_deterministic_with_ties_and_unvoted_pieces():
    names = ["e", "d", "c", "b", "a"]
    votes = np.array([3, 3, 0, 0, 5])
    best = np.array([0.5, 0.7, 0.9, 0.9, 0.2])
    np.testing.assert_array_equal(rank_pieces(votes, best, names), [4, 1, 0, 3, 2])
    # full ties fall back to the name
    np.testing.assert_array_equal(rank_pieces(np.zeros(3), np.zeros(3), ["z", "x", "y"]), [1, 2, 0])
    # a real search: piece 'b' gets no votes and ranks after the voted pieces
    codes = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.6, 0.8]], np.float32)
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    db = SnippetDB("audio", codes, np.array([0, 0, 1, 2]), ["a", "c", "b"])
    query = np.array([[1.0, 0.0], [0.99, 0.14]], np.float32)
    first = identify(query, db, k=2)
    assert [first.piece_names[i] for i in first.order] == ["a", "b", "c"]
    assert first.votes.tolist() == [4, 0, 0] and first.rank_of("c") == 3
    # 'b' (0.6, 0.8) is closer to the query than 'c' (0, 1): the similarity breaks the tie
    assert first.best_similarity[2] > first.best_similarity[1]
    again = identify(query, db, k=2)
    np.testing.assert_array_equal(first.order, again.order)
    assert first.top(2) == [("a", 4, 1.0), ("b", 0, 0.0)]


def test_db_cache_round_trips_and_refuses_a_stale_cache(tmp_path):
    params, config, split = tmp_path / "params.pt", tmp_path / "c.yaml", tmp_path / "s.yaml"
    params.write_bytes(b"weights v1")
    config.write_text("TEST_SYNTH: x\n")
    split.write_text("test: [a]\n")

    def fingerprint():
        return db_fingerprint("sheet", params, config, split, tmp_path, "Synth", 1.0)

    calls = []

    def build():
        calls.append(1)
        rng = np.random.default_rng(len(calls))
        return SnippetDB("sheet", rng.normal(size=(6, 4)).astype(np.float32),
                         np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], fingerprint())

    path = tmp_path / "sheet_db.npz"
    db = open_db(path, fingerprint(), build, log=lambda _: None)
    loaded = SnippetDB.load(path)
    np.testing.assert_array_equal(loaded.codes, db.codes)
    np.testing.assert_array_equal(loaded.piece_ids, db.piece_ids)
    assert loaded.piece_names == ["a", "b", "c"] and loaded.fingerprint == db.fingerprint
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) >= {"codes", "piece_ids", "piece_names", "fingerprint"}
    assert open_db(path, fingerprint(), build, log=lambda _: None).fingerprint == db.fingerprint
    assert len(calls) == 1  # served from the cache
    params.write_bytes(b"weights v2")  # retrained model
    with pytest.raises(AsrError, match="stale sheet database .*params_sha256.*--init_sheet_db"):
        open_db(path, fingerprint(), build, log=lambda _: None)
    rebuilt = open_db(path, fingerprint(), build, init=True, log=lambda _: None)
    assert len(calls) == 2 and SnippetDB.load(path).fingerprint == rebuilt.fingerprint
    path.write_bytes(b"not a zip")
    with pytest.raises(AsrError, match="not a readable snippet database"):
        SnippetDB.load(path)


# ------------------------------------------------------------------ scripts end to end


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(list(args), capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=full_env)


@pytest.fixture(scope="module")
def scripted(built_root, tmp_path_factory):
    """Run the three shell scripts with the demo config on a tiny split; returns the paths."""
    tmp = tmp_path_factory.mktemp("eval_scripts")
    split = tmp / "tiny_split.yaml"
    split.write_text(yaml.safe_dump({"train": PIECES, "valid": PIECES[:1], "test": PIECES}))
    exp_root = tmp / "exp"
    env = {"CONFIGS": "demo", "N_TRAIN": "300", "N_TEST": "50",
           "EXTRA_ARGS": f"--data_root {built_root} --exp_root {exp_root}",
           "TRAIN_ARGS": "--max_epochs 1 --epoch_samples 200 --n_valid 100",
           "EVAL_ARGS": "--test_synth TimGM6mbPiano --allow_train_overlap"}   # 2 pieces: test = train
    procs = {}
    for script in ("train_models.sh", "eval_models.sh"):
        procs[script] = _run("bash", script, "cpu", "models/demo.py", str(split), env=env)
    env["EVAL_ARGS"] += " --n_queries 20 --k 5"
    procs["eval_piece_retrieval.sh"] = _run("bash", "eval_piece_retrieval.sh", "cpu", "models/demo.py",
                                            str(split), env=env)
    common = ["--model", "models/demo.py", "--config", "exp_configs/demo.yaml", "--train_split",
              str(split), "--data_root", str(built_root), "--exp_root", str(exp_root),
              "--estimate_UV", "--test_synth", "TimGM6mbPiano", "--n_queries", "20",
              "--allow_train_overlap"]
    return {"procs": procs, "exp_root": exp_root, "split": split, "common": common, "tmp": tmp}


def test_shell_scripts_run_end_to_end(scripted):
    for name, proc in scripted["procs"].items():
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
    folder = scripted["exp_root"] / "demo_est_UV"
    assert (scripted["exp_root"] / "demo" / "params_tiny_split_demo.pt").is_file()
    tag = "tiny_split_demo"
    for direction in ("S2A", "A2S"):
        stem = f"eval_{tag}_{direction}_1000_TimGM6mbPiano"
        data = yaml.safe_load((folder / f"{stem}.yaml").read_text())
        assert set(data["recall_at_k"]) == {"1", "5", "10", "25"}
        assert 0 < data["map"] <= 1 and data["n_test"] == 50 and data["estimate_UV"] is True
        csv = (folder / f"{stem}_ranks.csv").read_text().splitlines()
        assert csv[0] == "index,piece,rank" and len(csv) == 51
        assert (folder / f"{stem}_ranks.png").stat().st_size > 1000
        ident = yaml.safe_load((folder / f"retrieval_{tag}_{direction}_TimGM6mbPiano_1000.yaml")
                               .read_text())
        assert sorted(ident["pieces"]) == PIECES and set(ident["ranks"]) <= {1, 2}
        for dump in (data, ident):   # provenance: the split's digest, the trained-on overlap
            assert dump["split_digest"] == dump["params_split_digest"] and len(dump["split_digest"]) == 40
            assert dump["train_test_overlap"] == PIECES
    rows = collect_results([folder])
    assert {(r["direction"], r["config"]) for r in rows} == {("S2A", "demo"), ("A2S", "demo")}
    assert all(r["R@1"] is not None and r["ID top-1"] is not None for r in rows)
    out = scripted["tmp"] / "table.md"
    proc = _run(sys.executable, "summarize_results.py", str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("| model | config | direction |")
    assert "demo_est_UV" in proc.stdout


def test_scripts_need_their_arguments():
    proc = _run("bash", "eval_models.sh", "cpu")
    assert proc.returncode == 2 and proc.stderr.startswith("usage:")


def test_query_a_built_recording_and_page(scripted, built_root):
    perf = built_root / "bach__bwv846" / "performances" / "bach__bwv846_tempo-1000_TimGM6mbPiano"
    proc = _run(sys.executable, "audio_sheet_server.py", *scripted["common"],
                "--query", str(perf / f"{perf.name}.flac"))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "%" in ln and "bach__" in ln]
    assert {ln.split()[-1] for ln in lines} == set(PIECES)
    shares = [float(ln.split()[2].rstrip("%")) for ln in lines]
    assert sum(shares) == pytest.approx(100, abs=0.2)
    page = next((built_root / "bach__bwv846" / "scores").glob("*/img/01.png"))
    proc = _run(sys.executable, "sheet_audio_server.py", *scripted["common"], "--query", str(page))
    assert proc.returncode == 0, proc.stderr
    assert "20 sheet snippets" in proc.stdout and "bach__bwv259" in proc.stdout


def test_bad_query_files_give_one_line(scripted):
    tmp = scripted["tmp"]
    silent, short, text = tmp / "silent.wav", tmp / "short.wav", tmp / "notes.wav"
    sf.write(silent, np.zeros(22050 * 5, np.float32), 22050)
    sf.write(short, 0.3 * np.sin(np.linspace(0, 2000, 11025)).astype(np.float32), 22050)
    text.write_text("not audio")
    cases = [(audio_file_queries, tmp / "missing.flac", "not found"),
             (audio_file_queries, text, "not a readable audio file"),
             (audio_file_queries, short, "shorter than one excerpt"),
             (audio_file_queries, silent, "silent"),
             (page_file_queries, tmp / "missing.png", "not found"),
             (page_file_queries, text, "not a readable image")]
    for fn, path, message in cases:
        with pytest.raises(AsrError) as err:
            fn([path], 10) if fn is page_file_queries else fn(path, 10, 42)
        assert "\n" not in str(err.value) and message in str(err.value) and str(path) in str(err.value)
    # and through the scripts: one line on stderr, exit status 1 (a bad file, not a bad option)
    for script, path, message in [("audio_sheet_server.py", short, "shorter than one excerpt"),
                                  ("sheet_audio_server.py", text, "not a readable image")]:
        proc = _run(sys.executable, script, *scripted["common"], "--query", str(path))
        assert proc.returncode == 1, (script, path, proc.stderr)
        assert proc.stderr.count("\n") == 1 and message in proc.stderr and str(path) in proc.stderr


def test_vote_normalisation_counters_long_pieces():
    from audio_sheet_retrieval.eval.search import identify
    from audio_sheet_retrieval.eval.snippet_db import SnippetDB

    rng = np.random.default_rng(0)
    # piece 0 is long (many random snippets), piece 1 short but holds the query's true snippets
    codes = rng.normal(size=(220, 8))
    codes[200:] = np.array([1.0] + [0.0] * 7) + 0.3 * rng.normal(size=(20, 8))
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    ids = np.r_[np.zeros(200, int), np.ones(20, int)]
    db = SnippetDB("sheet", codes.astype(np.float32), ids, ["long", "short"])
    query = np.array([[1.0] + [0.0] * 7], dtype=np.float32)
    plain = identify(query, db, k=60)  # 20 votes for the short piece, 40 for the long one
    normed = identify(query, db, k=60, vote_norm="size")
    assert plain.top(1)[0][0] == "long"
    assert normed.top(1)[0][0] == "short"
    with pytest.raises(ValueError, match="vote_norm"):
        identify(query, db, vote_norm="bogus")
