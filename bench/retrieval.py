#!/usr/bin/env python
"""Benchmark of retrieval: snippet ranking speed and piece-identification time.

Writes ``bench/results/retrieval.json``. Each figure is a median over repeats;
ratios compare against a baseline measured in the same process:

- snippet ranking: queries/s of :func:`partner_ranks` (torch, blocked matrix
  products, counting better candidates; float64 as run_eval uses it, and
  float32) vs a plain numpy baseline (full similarity rows + ``argsort``), at
  2,000, 10,000 and 30,000 candidates of random unit 32-d codes. Both rank
  the same ``--n_queries`` queries, so queries/s is comparable across sizes;
- piece identification (if ``--data_root`` exists, default ``/tmp/d2``): every
  piece of the data root as a test piece, a randomly initialised demo model
  (timing does not depend on the weights): seconds to build each database,
  and seconds per query piece for A2S and S2A (cut 100 queries, embed them,
  k-NN search with k=25, vote).

Usage::

    python bench/retrieval.py [--data_root /tmp/d2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_sheet_retrieval.eval.snippet_retrieval import partner_ranks  # noqa: E402
from bench.common import median_seconds, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def unit_codes(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` random unit-norm codes, shape (n, dim), float32."""
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_argsort_ranks(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Baseline: sort every similarity row and find the partner's position (1-based)."""
    ranks = np.empty(len(queries), dtype=np.int64)
    for lo in range(0, len(queries), 256):
        sim = queries[lo:lo + 256] @ candidates.T
        order = np.argsort(-sim, axis=1)
        ranks[lo:lo + 256] = np.argmax(order == np.arange(lo, lo + len(sim))[:, None], axis=1) + 1
    return ranks


def bench_size(n: int, n_queries: int, repeats: int) -> dict:
    """Queries/s of our ranking (float64, float32) and the numpy baseline at ``n`` candidates."""
    cand = unit_codes(n, seed=1)
    queries = cand[:n_queries] + 0.3 * unit_codes(n_queries, seed=2)  # noisy partners
    q64, c64 = queries.astype(np.float64), cand.astype(np.float64)
    ours, _ = partner_ranks(q64, c64)
    assert np.array_equal(ours, numpy_argsort_ranks(q64, c64)), "the baseline disagrees"
    t64 = median_seconds(lambda: partner_ranks(q64, c64), repeats)
    t32 = median_seconds(lambda: partner_ranks(queries, cand, dtype=torch.float32), repeats)
    tnp = median_seconds(lambda: numpy_argsort_ranks(q64, c64), repeats)
    row = {"candidates": n, "queries": n_queries,
           "ours_float64_queries_per_s": n_queries / t64,
           "ours_float32_queries_per_s": n_queries / t32,
           "numpy_argsort_queries_per_s": n_queries / tnp,
           "speedup_float64_vs_numpy": tnp / t64, "speedup_float32_vs_numpy": tnp / t32}
    print(f"{n:>6} candidates: ours {row['ours_float64_queries_per_s']:,.0f} q/s (float64), "
          f"{row['ours_float32_queries_per_s']:,.0f} q/s (float32); numpy argsort "
          f"{row['numpy_argsort_queries_per_s']:,.0f} q/s -> x{row['speedup_float64_vs_numpy']:.1f}")
    return row


def bench_ranking(sizes: list[int], n_queries: int, repeats: int) -> list[dict]:
    """:func:`bench_size` at every size."""
    return [bench_size(n, n_queries, repeats) for n in sizes]


def bench_piece_id(data_root: Path, n_queries: int = 100, k: int = 25) -> dict:
    """Seconds per query piece of both piece-identification directions on a data root."""
    from audio_sheet_retrieval.config.exp_config import load_config
    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.eval.piece_id import evaluate_piece_id, model_embedder
    from audio_sheet_retrieval.eval.queries import pool_queries
    from audio_sheet_retrieval.eval.snippet_db import build_db, pool_db_batches
    from audio_sheet_retrieval.nn.module_loader import load_model_module

    config = load_config(REPO / "exp_configs" / "demo.yaml")
    pieces = sorted(p.name for p in data_root.iterdir() if (p / "performances").is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "bench_split.yaml"
        split.write_text(yaml.safe_dump({"train": pieces, "valid": pieces, "test": pieces}))
        pool = load_pools(data_root, split, config, kinds=("test",), progress=False)["test"]
    torch.manual_seed(0)
    model = load_model_module(REPO / "models" / "demo.py").build_model(config)
    out = {"data_root": str(data_root), "pieces": len(pool.pieces), "db_entries": len(pool),
           "n_queries": n_queries, "k": k, "test_synth": config["TEST_SYNTH"]}
    for direction, kind, query_kind in (("A2S", "sheet", "audio"), ("S2A", "audio", "sheet")):
        t = time.perf_counter()
        db = build_db(kind, pool.piece_names, pool_db_batches(pool, kind, progress=False),
                      model_embedder(model, kind))
        out[f"{kind}_db_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = evaluate_piece_id(pool_queries(pool, query_kind, n_queries),
                                   model_embedder(model, query_kind), db, k, direction,
                                   progress=False)
        out[f"{direction}_s_per_query_piece"] = (time.perf_counter() - t) / len(result.pieces)
        print(f"piece identification {direction}: {kind} database of {len(db)} snippets built in "
              f"{out[f'{kind}_db_build_s']:.1f} s; {out[f'{direction}_s_per_query_piece']:.2f} s "
              f"per query piece ({len(pool.pieces)} pieces)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2_000, 10_000, 30_000])
    p.add_argument("--n_queries", type=int, default=1_000, help="queries ranked per size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared)")
    p.add_argument("--data_root", type=Path, default=Path("/tmp/d2"))
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = {"threads": args.threads, "ranking": bench_ranking(args.sizes, args.n_queries, args.repeats)}
    if args.data_root.is_dir():
        data["piece_id"] = bench_piece_id(args.data_root)
    else:
        print(f"{args.data_root} not found: piece identification not timed")
    print(f"wrote {write_json('retrieval', data, args.out)}")


if __name__ == "__main__":
    main()
