"""Piece identification: k-nearest-neighbour votes of query snippets over a snippet database.

The original's ``AudioSheetServer``, both ways:

* **A2S** (``audio_sheet_server.py``, score identification from audio): the
  database holds one sheet snippet per aligned onset of every test piece;
  a query is a piece's full TEST_SYNTH recording cut into ``n_queries``
  (100) evenly spaced excerpts.
* **S2A** (``sheet_audio_server.py``, performance identification from a
  score): the database holds one excerpt per onset of every test piece's
  TEST_SYNTH performance; a query is the piece's unrolled score cut into 100
  evenly spaced 160 x 200 windows.

This module evaluates identification over all test pieces and drives the two
servers. The parts: databases in :mod:`~audio_sheet_retrieval.eval.snippet_db`,
query snippets in :mod:`~audio_sheet_retrieval.eval.queries`, the k-NN votes
and the ranking in :mod:`~audio_sheet_retrieval.eval.search`. Everything
model-specific enters as an *embedding function* ``embed(inputs) -> codes``
(see :func:`model_embedder`), so the core can be checked with oracle or random
embeddings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.errors import AsrError, UsageError
from audio_sheet_retrieval.eval.metrics import mean_reciprocal_rank
from audio_sheet_retrieval.eval.queries import audio_file_queries, page_file_queries, pool_queries
from audio_sheet_retrieval.eval.search import VOTE_NORMS, PieceRanking, identify
from audio_sheet_retrieval.eval.snippet_db import (
    Embed,
    SnippetDB,
    build_db,
    db_fingerprint,
    db_path,
    open_db,
    pool_db_batches,
)

DB_KIND = {"A2S": "sheet", "S2A": "audio"}
"""Direction -> the view in the database (queries are the other view)."""


# =================================================================== evaluation


def piece_id_summary(ranks: np.ndarray) -> dict:
    """Counts and ratios of true-piece ranks at 1, <= 5, <= 10 and > 10, and the MRR.

    Parameters
    ----------
    ranks : np.ndarray, shape (n_pieces,)
        1-based rank of each query piece.

    Returns
    -------
    dict
        ``n``, ``rank_1``, ``rank_le_5``, ``rank_le_10``, ``rank_gt_10``
        (counts), ``ratio_1`` ... ``ratio_gt_10`` (fractions of ``n``), ``MRR``.
    """
    ranks = np.asarray(ranks)
    counts = {"rank_1": int(np.sum(ranks == 1)), "rank_le_5": int(np.sum(ranks <= 5)),
              "rank_le_10": int(np.sum(ranks <= 10)), "rank_gt_10": int(np.sum(ranks > 10))}
    ratios = {k.replace("rank", "ratio"): v / len(ranks) for k, v in counts.items()}
    return {"n": int(len(ranks)), **counts, **ratios, "MRR": mean_reciprocal_rank(ranks)}


@dataclass
class PieceIdResult:
    """Piece identification over all query pieces.

    Attributes
    ----------
    direction : {'A2S', 'S2A'}
    pieces : list of str
        Query pieces, in order.
    ranks : np.ndarray, shape (n,), int64
        Rank of each query's true piece.
    best : list of str
        The top-ranked piece of each query.
    summary : dict
        See :func:`piece_id_summary`.
    """

    direction: str
    pieces: list[str]
    ranks: np.ndarray
    best: list[str]
    summary: dict


def evaluate_piece_id(queries: Iterable[tuple[str, np.ndarray]], embed: Embed, db: SnippetDB,
                      k: int = 25, direction: str = "A2S", device: str | torch.device = "cpu",
                      progress: bool = True, total: int | None = None,
                      vote_norm: str = "none") -> PieceIdResult:
    """Identify every query piece and record the rank of the true one.

    Parameters
    ----------
    queries : iterable of (piece name, inputs)
        Query snippets of each piece, as ``embed`` takes them.
    embed : callable
        Inputs -> unit-norm codes.
    db : SnippetDB
        Must hold every query piece.
    k : int
    direction : str
        Recorded in the result.
    vote_norm : {'none', 'sqrt', 'size'}
        See :func:`~audio_sheet_retrieval.eval.search.identify`.
    device : str or torch.device
    progress : bool
    total : int, optional
        Number of query pieces (for the progress bar).

    Returns
    -------
    PieceIdResult
    """
    pieces, ranks, best = [], [], []
    for name, inputs in tqdm(queries, total=total, desc=f"piece identification {direction}",
                             unit="piece", disable=not progress, leave=False):
        if name not in db.piece_names:
            raise AsrError(f"query piece {name} is not in the {db.kind} database; rebuild it with "
                           f"--init_{db.kind}_db")
        ranking = identify(embed(inputs), db, k, device, vote_norm)
        pieces.append(name)
        ranks.append(ranking.rank_of(name))
        best.append(ranking.piece_names[ranking.order[0]])
    ranks = np.asarray(ranks, dtype=np.int64)
    return PieceIdResult(direction, pieces, ranks, best, piece_id_summary(ranks))


def model_embedder(model, kind: str, batch_size: int = 256) -> Embed:
    """The embedding function of one view of a model: inputs -> codes (numpy, float32)."""
    fn = model.embed_sheet if kind == "sheet" else model.embed_spec
    return lambda inputs: fn(inputs, batch_size=batch_size).cpu().numpy()


# =================================================================== reports


def format_ranking(ranking: PieceRanking, top: int = 10) -> str:
    """The top pieces of one query with votes and vote shares, as text lines."""
    lines = [f"{'rank':>4}  {'votes':>6}  {'share':>6}  piece"]
    for i, (name, votes, share) in enumerate(ranking.top(top), start=1):
        lines.append(f"{i:>4}  {votes:>6}  {100 * share:>5.1f}%  {name}")
    return "\n".join(lines)


def format_piece_id(result: PieceIdResult) -> str:
    """Per-piece ranks and the summary, as text lines."""
    s = result.summary
    lines = [f"{'rank':>4}  piece (best guess if wrong)"]
    for name, rank, best in zip(result.pieces, result.ranks, result.best):
        lines.append(f"{rank:>4}  {name}" + ("" if rank == 1 else f"  ({best})"))
    n = s["n"]
    lines += ["", f"{result.direction} piece identification over {n} pieces:",
              f"  rank 1   : {s['rank_1']:>4} / {n}  ({100 * s['ratio_1']:.1f} %)",
              f"  rank <=5 : {s['rank_le_5']:>4} / {n}  ({100 * s['ratio_le_5']:.1f} %)",
              f"  rank <=10: {s['rank_le_10']:>4} / {n}  ({100 * s['ratio_le_10']:.1f} %)",
              f"  rank >10 : {s['rank_gt_10']:>4} / {n}  ({100 * s['ratio_gt_10']:.1f} %)",
              f"  MRR      : {s['MRR']:.3f}"]
    return "\n".join(lines)


# =================================================================== the servers' driver


@dataclass(frozen=True)
class PieceIdOptions:
    """What ``audio_sheet_server.py`` / ``sheet_audio_server.py`` were asked to do.

    Attributes
    ----------
    direction : {'A2S', 'S2A'}
        A2S: audio queries, sheet database; S2A: sheet queries, audio database.
    n_queries : int
        Query snippets per query piece or file (100).
    k : int
        Nearest neighbours voting per query snippet (25).
    vote_norm : {'none', 'sqrt', 'size'}
        Vote weighting (``none``: the original's plain votes).
    init_db : bool
        Rebuild the database cache (``--init_sheet_db`` / ``--init_audio_db``).
    full_eval : bool
        Identify every test piece.
    dump_results : bool
        Write ``retrieval_<tag>_<direction>.yaml`` beside the parameters.
    query : tuple of str
        Files to identify: a recording (A2S) or score page image(s) (S2A).
    test_synth, test_tempo : optional
        Override the config's TEST_SYNTH / TEST_TEMPO.
    top : int
        Pieces listed for a ``--query``.
    batch_size : int
        Snippets embedded at a time.
    progress : bool
    allow_train_overlap : bool
        Evaluate even if test pieces were training pieces of the parameters
        (``--allow_train_overlap``; recorded in the dump).
    """

    direction: str
    n_queries: int = 100
    k: int = 25
    vote_norm: str = "none"
    init_db: bool = False
    full_eval: bool = False
    dump_results: bool = False
    query: tuple[str, ...] = ()
    test_synth: str | None = None
    test_tempo: float | None = None
    top: int = 10
    batch_size: int = 256
    progress: bool = True
    allow_train_overlap: bool = False


_SERVER_HELP = {
    "A2S": {"init_db": "(re)build the cached sheet-snippet database of the test pieces",
            "full_eval": "identify every test piece from its TEST_SYNTH recording",
            "query": "a recording to identify (WAV, FLAC, OGG, MP3)",
            "n_queries": "excerpts per recording (100)",
            "k": "nearest snippets voting per excerpt (25)"},
    "S2A": {"init_db": "(re)build the cached audio-excerpt database of the test performances",
            "full_eval": "identify every test piece's performance from its unrolled score",
            "query": "score page image(s) of one piece, in page order (PNG, JPEG)",
            "n_queries": "score windows per query (100)",
            "k": "nearest excerpts voting per window (25)"},
}
"""Direction -> help texts of the flags that differ between the two servers."""


def add_server_arguments(parser: argparse.ArgumentParser, direction: str) -> None:
    """The flags of ``audio_sheet_server.py`` (A2S) and ``sheet_audio_server.py`` (S2A).

    Added to :func:`audio_sheet_retrieval.scripts.experiment_parser`'s parser:
    ``--estimate_UV``, ``--init_sheet_db`` (A2S) / ``--init_audio_db`` (S2A),
    ``--full_eval``, ``--dump_results``, ``--query`` (one recording for A2S,
    page images for S2A), ``--n_queries``, ``--k``, ``--top``, ``--test_synth``
    and ``--test_tempo``. :func:`server_options` turns the parsed flags into
    :class:`PieceIdOptions`.
    """
    helps = _SERVER_HELP[direction]
    parser.add_argument("--estimate_UV", action="store_true",
                        help="use the refined-CCA parameters (refine_cca.py)")
    parser.add_argument(f"--init_{DB_KIND[direction]}_db", action="store_true", help=helps["init_db"])
    parser.add_argument("--full_eval", action="store_true", help=helps["full_eval"])
    parser.add_argument("--dump_results", action="store_true",
                        help=f"with --full_eval: write retrieval_<tag>_{direction}.yaml beside the "
                             "parameters")
    parser.add_argument("--query", default=None, metavar="FILE", help=helps["query"],
                        **({"nargs": "+"} if direction == "S2A" else {}))
    parser.add_argument("--n_queries", type=int, default=100, help=helps["n_queries"])
    parser.add_argument("--k", type=int, default=25, help=helps["k"])
    parser.add_argument("--vote_norm", choices=tuple(VOTE_NORMS), default="none",
                        help="rank pieces by plain votes (none, the original), or by votes divided by "
                             "the square root of (sqrt), or by (size), the piece's number of snippets")
    parser.add_argument("--top", type=int, default=10, help="pieces listed for --query")
    parser.add_argument("--test_synth", default=None, help="override the config's TEST_SYNTH")
    parser.add_argument("--test_tempo", type=float, default=None,
                        help="override the config's TEST_TEMPO")


def server_options(args: argparse.Namespace, direction: str) -> PieceIdOptions:
    """:class:`PieceIdOptions` from the flags of :func:`add_server_arguments`."""
    if not args.query:
        query = ()
    elif isinstance(args.query, str):  # A2S: one recording
        query = (args.query,)
    else:  # S2A: page images
        query = tuple(args.query)
    return PieceIdOptions(direction, args.n_queries, args.k, args.vote_norm,
                          getattr(args, f"init_{DB_KIND[direction]}_db"), args.full_eval,
                          args.dump_results, query, args.test_synth, args.test_tempo, args.top,
                          allow_train_overlap=bool(getattr(args, "allow_train_overlap", False)))


def _query_inputs(options: PieceIdOptions, config: dict) -> np.ndarray:
    if options.direction == "A2S":
        if len(options.query) != 1:
            raise UsageError(f"--query takes one recording, got {len(options.query)} files")
        return audio_file_queries(options.query[0], options.n_queries, config["SPEC_CONTEXT"])
    return page_file_queries(list(options.query), options.n_queries, config["STAFF_HEIGHT"],
                             config["SHEET_CONTEXT"])


def run_piece_id(exp, config_file: str | Path, options: PieceIdOptions,
                 log: Callable[[str], None] = print) -> PieceIdResult | PieceRanking | None:
    """Open (or build) the database, then identify a ``--query`` file and/or all test pieces.

    Parameters
    ----------
    exp : audio_sheet_retrieval.scripts.Experiment
        From ``setup_experiment(args, estimate_uv=...)``; its parameters are loaded here.
    config_file : path
        The experiment config file (fingerprinted).
    options : PieceIdOptions
    log : callable
        Receives the report lines.

    Returns
    -------
    PieceIdResult, PieceRanking or None
        The full evaluation if run, else the query's ranking, else None.
    """
    from audio_sheet_retrieval.atomic import write_yaml_atomic
    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.eval.snippet_retrieval import with_test_conditions
    from audio_sheet_retrieval.eval.summary import retrieval_stem
    from audio_sheet_retrieval.train.checkpoint import load_model_state

    if options.direction not in DB_KIND:
        raise ValueError(f"direction must be one of {tuple(DB_KIND)}, got {options.direction!r}")
    if options.n_queries < 1 or options.k < 1 or options.top < 1:
        raise UsageError(f"--n_queries, --k and --top must be >= 1, got {options.n_queries}, "
                         f"{options.k} and {options.top}")
    config = with_test_conditions(exp.config, options.test_synth, options.test_tempo)
    synth, tempo = config["TEST_SYNTH"], float(config["TEST_TEMPO"])
    kind = DB_KIND[options.direction]
    query_kind = "audio" if kind == "sheet" else "sheet"
    query_inputs = _query_inputs(options, config) if options.query else None
    ckpt = load_model_state(exp.model, exp.paths.params, getattr(exp, "name", None))
    pools: dict[str, SnippetPool] = {}

    def test_pool() -> SnippetPool:
        if not pools:
            pools.update(load_pools(exp.data_root, exp.split_file, config, kinds=("test",),
                                    progress=options.progress))
            if len(pools["test"].pieces) < 2:
                raise AsrError(f"{exp.split_file}: the test pool has {pools['test'].describe()}; "
                               "identifying a piece needs at least 2 candidate pieces: add "
                               "pieces to the split's test list")
        return pools["test"]

    def build() -> SnippetDB:
        pool = test_pool()
        return build_db(kind, pool.piece_names, pool_db_batches(pool, kind, options.batch_size,
                                                                options.progress),
                        model_embedder(exp.model, kind, options.batch_size), fingerprint)

    fingerprint = db_fingerprint(kind, exp.paths.params, config_file, exp.split_file, exp.data_root,
                                 synth, tempo)
    path = db_path(exp.paths.folder, kind, exp.paths.tag, synth, tempo)
    db = open_db(path, fingerprint, build, options.init_db, log)
    embed = model_embedder(exp.model, query_kind, options.batch_size)
    out: PieceIdResult | PieceRanking | None = None
    if query_inputs is not None:
        out = identify(embed(query_inputs), db, options.k, exp.device, options.vote_norm)
        log(f"{' '.join(options.query)}: {len(query_inputs)} {query_kind} snippets, k={options.k}")
        log(format_ranking(out, options.top))
    if options.full_eval:
        provenance = exp.evaluation_provenance(ckpt, options.allow_train_overlap)
        pool = test_pool()
        out = evaluate_piece_id(pool_queries(pool, query_kind, options.n_queries), embed, db,
                                options.k, options.direction, exp.device, options.progress,
                                total=len(pool.pieces), vote_norm=options.vote_norm)
        log(format_piece_id(out))
        if options.dump_results:
            overridden = (synth != exp.config["TEST_SYNTH"]
                          or tempo != float(exp.config["TEST_TEMPO"]))
            stem = retrieval_stem(exp.paths.tag, options.direction,
                                  *((synth, tempo) if overridden else (None, None)))
            if options.vote_norm != "none":
                stem += f"_norm-{options.vote_norm}"
            written = write_yaml_atomic({
                "ranks": [int(r) for r in out.ranks], "pieces": out.pieces, "best": out.best,
                "summary": out.summary, "direction": options.direction,
                "model": exp.paths.folder.name.removesuffix("_est_UV"),
                "estimate_UV": exp.paths.folder.name.endswith("_est_UV"),
                "config": Path(config_file).stem, "split": exp.split_file.stem,
                "test_synth": synth, "test_tempo": tempo, "k": options.k,
                "vote_norm": options.vote_norm,
                "n_queries": options.n_queries, **provenance}, exp.paths.folder / f"{stem}.yaml")
            log(f"results: {written}")
    if out is None:
        log("database ready; pass --full_eval to identify every test piece or --query FILE "
            "(the original's live microphone/GUI mode is not part of this rebuild)")
    return out
