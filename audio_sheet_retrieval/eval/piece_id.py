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

Each query snippet's ``k`` (25) nearest database entries (cosine) vote for
their piece; pieces are ranked by votes, ties broken by the best similarity
of any query snippet to any of the piece's entries, then by name. A piece
without votes ranks after every voted piece (the original gave it rank
``len(list)``, tying it with the last voted piece).

Everything model-specific enters as an *embedding function* ``embed(inputs)
-> codes`` (see :func:`model_embedder`), so the core can be checked with
oracle or random embeddings. Databases are cached as ``.npz`` (no pickle)
with a fingerprint of the parameters, config, split, data root and test
performance; a stale cache is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import SnippetPool, sheet_snippet, spec_excerpt
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.metrics import mean_reciprocal_rank
from audio_sheet_retrieval.eval.summary import tempo_code

KINDS = ("sheet", "audio")
"""Database kinds: the view stored in the database."""
DB_KIND = {"A2S": "sheet", "S2A": "audio"}
"""Direction -> the view in the database (queries are the other view)."""
DB_VERSION = 1

Embed = Callable[[np.ndarray], np.ndarray]
"""Inputs ``(N, ...)`` -> unit-norm codes ``(N, D)`` float32."""


# =================================================================== fingerprints


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's contents (hex), read in 1 MiB chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def db_fingerprint(kind: str, params: str | Path, config_file: str | Path, split_file: str | Path,
                   data_root: str | Path, test_synth: str, test_tempo: float) -> dict[str, str]:
    """What a database depends on: a cache with another fingerprint is stale.

    Parameters
    ----------
    kind : {'sheet', 'audio'}
    params : path
        Model parameters file (its path and the SHA-256 of its contents).
    config_file, split_file : path
        Experiment config and split YAML (their contents' SHA-256).
    data_root : path
        Data root the pool was read from.
    test_synth : str
    test_tempo : float
        Tempo ratio of the test performances.

    Returns
    -------
    dict of str -> str
    """
    return {"kind": kind,
            "params": str(Path(params).resolve()), "params_sha256": file_digest(params),
            "config_sha256": file_digest(config_file), "split_sha256": file_digest(split_file),
            "data_root": str(Path(data_root).resolve()),
            "test_synth": str(test_synth), "test_tempo": f"{float(test_tempo):g}"}


# =================================================================== database


@dataclass
class SnippetDB:
    """Snippet codes of every test piece.

    Attributes
    ----------
    kind : {'sheet', 'audio'}
        The view of the stored snippets.
    codes : np.ndarray, shape (N, D), float32
        Unit-norm codes.
    piece_ids : np.ndarray, shape (N,), int64
        Index into ``piece_names`` of each entry.
    piece_names : list of str
    fingerprint : dict of str -> str
        See :func:`db_fingerprint`.
    locations : np.ndarray, shape (N, 3), optional
        Where each sheet snippet lies: (page, system, column), 0-based page and
        system indices and the page column of the snippet centre in pixels
        (used by ``asr locate``).
    """

    kind: str
    codes: np.ndarray
    piece_ids: np.ndarray
    piece_names: list[str]
    fingerprint: dict = field(default_factory=dict)
    locations: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def n_pieces(self) -> int:
        return len(self.piece_names)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically (temporary file + rename); no pickled objects."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, version=np.int64(DB_VERSION), kind=np.str_(self.kind),
                         codes=self.codes.astype(np.float32), piece_ids=self.piece_ids.astype(np.int64),
                         piece_names=np.array(self.piece_names, dtype=str),
                         fingerprint=np.str_(json.dumps(self.fingerprint, sort_keys=True)),
                         **({} if self.locations is None else
                            {"locations": self.locations.astype(np.float32)}))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SnippetDB:
        """Read a database written by :meth:`save`.

        Raises
        ------
        AsrError
            If the file is missing or not such a database.
        """
        path = Path(path)
        if not path.is_file():
            raise AsrError(f"{path}: snippet database not found; build it with --init_sheet_db "
                           "or --init_audio_db")
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != DB_VERSION:
                    raise ValueError(f"version {int(z['version'])}")
                db = cls(str(z["kind"]), z["codes"].astype(np.float32), z["piece_ids"].astype(np.int64),
                         [str(n) for n in z["piece_names"]], json.loads(str(z["fingerprint"])),
                         z["locations"] if "locations" in z.files else None)
        except Exception as err:  # zip, key, value and JSON errors
            raise AsrError(f"{path}: not a readable snippet database ({type(err).__name__}); "
                           "rebuild it with --init_sheet_db / --init_audio_db") from None
        return db


def db_path(folder: str | Path, kind: str, tag: str, test_synth: str, test_tempo: float) -> Path:
    """``<folder>/<kind>_db_<tag>_<synth>_<tempo x 1000>.npz`` (beside the parameters)."""
    return Path(folder) / f"{kind}_db_{tag}_{test_synth}_{tempo_code(test_tempo)}.npz"


def build_db(kind: str, piece_names: list[str], batches: Iterable[tuple[np.ndarray, np.ndarray]],
             embed: Embed, fingerprint: dict | None = None) -> SnippetDB:
    """Embed batches of snippets into a database.

    Parameters
    ----------
    kind : {'sheet', 'audio'}
    piece_names : list of str
    batches : iterable of (inputs, piece_ids)
        ``inputs`` (B, ...) as ``embed`` takes them; ``piece_ids`` (B,) int.
    embed : callable
        Inputs -> unit-norm codes (B, D).
    fingerprint : dict, optional

    Returns
    -------
    SnippetDB
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    codes, ids = [], []
    for inputs, piece_ids in batches:
        codes.append(np.asarray(embed(inputs), dtype=np.float32))
        ids.append(np.asarray(piece_ids, dtype=np.int64))
    if not codes:
        raise ValueError("no snippets to put in the database")
    return SnippetDB(kind, np.concatenate(codes), np.concatenate(ids), list(piece_names),
                     dict(fingerprint or {}))


def pool_db_batches(pool: SnippetPool, kind: str, batch_size: int = 256, progress: bool = True
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every entity of the pool as a database snippet: its sheet snippet or its excerpt.

    Yields
    ------
    inputs : np.ndarray
        Sheets (B, 160, 200) uint8 or excerpts (B, 92, T) float32.
    piece_ids : np.ndarray, shape (B,), int64
    """
    view = KINDS.index(kind)
    starts = range(0, len(pool), batch_size)
    for lo in tqdm(starts, desc=f"building the {kind} database", unit="batch",
                   disable=not progress, leave=False):
        idx = np.arange(lo, min(lo + batch_size, len(pool)))
        yield pool.pairs(idx, augment=False)[view], pool.entity_piece[idx]


def open_db(path: Path, fingerprint: dict, build: Callable[[], SnippetDB], init: bool = False,
            log: Callable[[str], None] = print) -> SnippetDB:
    """Load a cached database, or build and cache it.

    Parameters
    ----------
    path : Path
        Cache file.
    fingerprint : dict
        What the cache must have been built for.
    build : callable
        Builds a fresh database (with ``fingerprint``).
    init : bool
        Rebuild even if a cache exists (``--init_*_db``).
    log : callable

    Raises
    ------
    AsrError
        If the cache exists but is stale or corrupt and ``init`` is off.
    """
    kind = fingerprint.get("kind", "snippet")
    if init or not path.exists():
        db = build()
        db.save(path)
        log(f"{kind} database: {len(db)} snippets of {db.n_pieces} pieces -> {path}")
        return db
    db = SnippetDB.load(path)
    changed = sorted(k for k in set(fingerprint) | set(db.fingerprint)
                     if fingerprint.get(k) != db.fingerprint.get(k))
    if changed:
        raise AsrError(f"{path}: stale {kind} database (built for another "
                       f"{', '.join(changed)}); rebuild it with --init_{kind}_db")
    log(f"{kind} database: {len(db)} snippets of {db.n_pieces} pieces (cached {path.name})")
    return db


# =================================================================== queries


def audio_queries(spec: np.ndarray, n_queries: int, context: int) -> np.ndarray:
    """``n_queries`` evenly spaced excerpts of a whole spectrogram (fewer if it is short).

    Excerpt starts are ``linspace(0, frames - context, n_queries)`` rounded
    and made unique; a spectrogram shorter than ``context`` gives one
    zero-padded excerpt.

    Parameters
    ----------
    spec : np.ndarray, shape (bins, frames)
    n_queries : int
    context : int
        Excerpt length, frames.

    Returns
    -------
    np.ndarray, shape (n, bins, context), float32
    """
    last = max(spec.shape[1] - context, 0)
    starts = np.unique(np.round(np.linspace(0, last, n_queries)).astype(np.int64))
    return np.stack([spec_excerpt(spec, int(s) + context // 2, context) for s in starts])


def sheet_queries(strip: np.ndarray, n_queries: int, height: int = 160, width: int = 200
                  ) -> np.ndarray:
    """``n_queries`` evenly spaced windows of an unrolled score strip.

    Window centres are ``linspace(width / 2, strip_width - width / 2,
    n_queries)`` (pixels) rounded and made unique; vertically each window is
    centred on the strip (white beyond its ends).

    Parameters
    ----------
    strip : np.ndarray, shape (H, W), uint8
    n_queries : int
    height, width : int
        Window size, pixels.

    Returns
    -------
    np.ndarray, shape (n, height, width), uint8
    """
    lo, hi = width / 2, max(strip.shape[1] - width / 2, width / 2)
    centres = np.unique(np.round(np.linspace(lo, hi, n_queries)).astype(np.int64))
    return np.stack([sheet_snippet(strip, float(x), height, width) for x in centres])


def pool_queries(pool: SnippetPool, query_kind: str, n_queries: int = 100
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """(piece name, query snippets) of every piece in the pool.

    ``query_kind='audio'``: the piece's (first) performance in the pool,
    i.e. TEST_SYNTH at TEST_TEMPO for a test pool; ``'sheet'``: its unrolled
    score.
    """
    for piece in pool.pieces:
        if query_kind == "audio":
            yield piece.name, audio_queries(piece.performances[0].spec, n_queries, pool.spec_context)
        else:
            yield piece.name, sheet_queries(piece.strip, n_queries, pool.staff_height,
                                            pool.sheet_context)


def audio_file_queries(path: str | Path, n_queries: int, context: int) -> np.ndarray:
    """Query excerpts of a recording (WAV, FLAC, OGG, MP3).

    Raises
    ------
    AsrError
        Missing or unreadable file, a silent recording, or one shorter than one excerpt.
    """
    from audio_sheet_retrieval.audio.io import recording_spectrogram

    spec = recording_spectrogram(path, context)
    return audio_queries(spec, n_queries, context)


def _read_page(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise AsrError(f"{path}: page image not found; check the path")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise AsrError(f"{path}: not a readable image ({type(err).__name__}); use a PNG or JPEG "
                       "of a score page") from None


def _layout_mung(page: Path) -> Path:
    """``<img dir>/../mung/<stem>.xml``: the MuNG file of a page of our data layout."""
    return page.parent.parent / "mung" / f"{page.stem}.xml"


def page_strip(paths: list[str | Path]) -> np.ndarray:
    """Unroll score pages (in the given order) into one strip.

    Pages of our data layout (with ``<img dir>/../mung/<stem>.xml``) use their
    annotated system boxes; other pages go through staff detection
    (:func:`audio_sheet_retrieval.sheet.staff_detection.unroll_page_images`).

    Returns
    -------
    np.ndarray, shape (200, W), uint8

    Raises
    ------
    AsrError
        A missing or unreadable page, or one where no system is found.
    """
    from audio_sheet_retrieval.data.mung import read_mung
    from audio_sheet_retrieval.data.prepare import _systems
    from audio_sheet_retrieval.data.unroll import unroll_systems

    paths = [Path(p) for p in paths]
    images = [_read_page(p) for p in paths]
    if all(_layout_mung(p).is_file() for p in paths):
        mungos = []
        for p in paths:
            try:
                mungos.append(read_mung(_layout_mung(p)))
            except Exception as err:  # ElementTree.ParseError, ValueError
                raise AsrError(f"{_layout_mung(p)}: corrupt MuNG XML ({type(err).__name__}); "
                               "rebuild the piece or remove the file") from None
        systems = [box for _, _, box in _systems(mungos)]
        if not systems:
            raise AsrError(f"{_layout_mung(paths[0])}: no system ('staff') objects in the MuNG file")
        return unroll_systems(images, systems).strip
    return _detected_strip(paths)


def _detected_strip(paths: list[Path]) -> np.ndarray:
    """Unroll arbitrary page images with the staff detector (imported lazily)."""
    try:
        from audio_sheet_retrieval.sheet.pages import load_pages
        from audio_sheet_retrieval.sheet.staff_detection import unroll_page_images
    except ImportError as err:
        raise AsrError(f"{paths[0]}: not a page of an MSMD-layout score (no mung/{paths[0].stem}.xml) "
                       f"and staff detection is unavailable ({err}); use a page of the data root") from None
    try:
        unrolled = unroll_page_images(load_pages(paths))
    except AsrError:
        raise
    except Exception as err:  # detector failures on odd pages
        raise AsrError(f"{paths[0]}: staff detection failed ({type(err).__name__}: "
                       f"{' '.join(str(err).split())[:120]}); use a clean score page") from None
    strip = getattr(unrolled, "strip", unrolled)
    strip = np.asarray(strip)
    if strip.ndim != 2 or strip.shape[1] == 0:
        raise AsrError(f"{paths[0]}: no staff system found on the page(s); use a clean score page")
    return strip


def page_file_queries(paths: list[str | Path], n_queries: int, height: int = 160,
                      width: int = 200) -> np.ndarray:
    """Query windows of score page image(s): unroll (:func:`page_strip`), then cut windows."""
    return sheet_queries(page_strip(paths), n_queries, height, width)


# =================================================================== search and votes


@dataclass
class Neighbours:
    """The ``k`` nearest database entries of each query snippet.

    Attributes
    ----------
    similarity : np.ndarray, shape (Q, k), float32
        Cosine similarities, descending per row.
    index : np.ndarray, shape (Q, k), int64
        Database rows.
    piece_best : np.ndarray, shape (P,), float32
        Best similarity of any query snippet to any entry of each piece
        (``-inf`` for a piece without entries).
    """

    similarity: np.ndarray
    index: np.ndarray
    piece_best: np.ndarray


def search(query_codes: np.ndarray, db: SnippetDB, k: int = 25, batch_size: int = 2048,
           device: str | torch.device = "cpu") -> Neighbours:
    """k-NN of query codes in a database: ``torch.topk`` of batched matrix products.

    Parameters
    ----------
    query_codes : np.ndarray, shape (Q, D)
        Unit-norm codes.
    db : SnippetDB
    k : int
        Neighbours per query (at most ``len(db)``).
    batch_size : int
        Queries per product (memory ``batch_size x len(db)``).
    device : str or torch.device

    Returns
    -------
    Neighbours
    """
    k = min(int(k), len(db))
    if k < 1 or len(query_codes) == 0:
        raise ValueError(f"need k >= 1, a non-empty database and queries (k={k}, "
                         f"{len(db)} entries, {len(query_codes)} queries)")
    codes = torch.as_tensor(db.codes, dtype=torch.float32, device=device)
    ids = torch.as_tensor(db.piece_ids, device=device)
    queries = torch.as_tensor(np.asarray(query_codes), dtype=torch.float32, device=device)
    sims, index = [], []
    best = torch.full((db.n_pieces,), -torch.inf, device=device)
    for lo in range(0, len(queries), batch_size):
        sim = queries[lo:lo + batch_size] @ codes.T
        top = torch.topk(sim, k, dim=1)
        sims.append(top.values)
        index.append(top.indices)
        best = best.scatter_reduce(0, ids, sim.max(dim=0).values, reduce="amax")
    return Neighbours(torch.cat(sims).cpu().numpy(), torch.cat(index).cpu().numpy(),
                      best.cpu().numpy())


def rank_pieces(votes: np.ndarray, best_similarity: np.ndarray, names: list[str]) -> np.ndarray:
    """Pieces best first: votes descending, then best similarity descending, then name.

    Parameters
    ----------
    votes : np.ndarray, shape (P,)
    best_similarity : np.ndarray, shape (P,)
    names : list of str, length P

    Returns
    -------
    np.ndarray, shape (P,), int64
        Piece indices; pieces without votes come after every voted piece.
    """
    name_order = np.argsort(np.argsort(np.array(names, dtype=str), kind="stable"), kind="stable")
    best = np.nan_to_num(np.asarray(best_similarity, dtype=np.float64), nan=-np.inf)
    return np.lexsort((name_order, -best, -np.asarray(votes))).astype(np.int64)


@dataclass
class PieceRanking:
    """The pieces ranked for one query (a recording or a score).

    Attributes
    ----------
    piece_names : list of str
    votes : np.ndarray, shape (P,), int64
        Votes per piece (indexed like ``piece_names``).
    best_similarity : np.ndarray, shape (P,)
    order : np.ndarray, shape (P,), int64
        Piece indices, best first.
    """

    piece_names: list[str]
    votes: np.ndarray
    best_similarity: np.ndarray
    order: np.ndarray

    @property
    def shares(self) -> np.ndarray:
        """Vote share of each piece, shape (P,), summing to 1 (0 without votes)."""
        return self.votes / max(int(self.votes.sum()), 1)

    def rank_of(self, piece: str | int) -> int:
        """1-based rank of a piece (by name or index)."""
        idx = self.piece_names.index(piece) if isinstance(piece, str) else int(piece)
        return int(np.flatnonzero(self.order == idx)[0]) + 1

    def top(self, n: int = 10) -> list[tuple[str, int, float]]:
        """(name, votes, share) of the ``n`` best pieces."""
        shares = self.shares
        return [(self.piece_names[i], int(self.votes[i]), float(shares[i])) for i in self.order[:n]]


def identify(query_codes: np.ndarray, db: SnippetDB, k: int = 25,
             device: str | torch.device = "cpu") -> PieceRanking:
    """Rank the database's pieces for a set of query snippet codes by k-NN votes.

    Parameters
    ----------
    query_codes : np.ndarray, shape (Q, D)
        Codes of one query's snippets (e.g. 100 excerpts of a recording).
    db : SnippetDB
    k : int
        Votes per query snippet.
    device : str or torch.device

    Returns
    -------
    PieceRanking
    """
    nn = search(query_codes, db, k, device=device)
    votes = np.bincount(db.piece_ids[nn.index].ravel(), minlength=db.n_pieces).astype(np.int64)
    order = rank_pieces(votes, nn.piece_best, db.piece_names)
    return PieceRanking(list(db.piece_names), votes, nn.piece_best, order)


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
                      progress: bool = True, total: int | None = None) -> PieceIdResult:
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
        ranking = identify(embed(inputs), db, k, device)
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
    """

    direction: str
    n_queries: int = 100
    k: int = 25
    init_db: bool = False
    full_eval: bool = False
    dump_results: bool = False
    query: tuple[str, ...] = ()
    test_synth: str | None = None
    test_tempo: float | None = None
    top: int = 10
    batch_size: int = 256
    progress: bool = True


def _query_inputs(options: PieceIdOptions, config: dict) -> np.ndarray:
    if options.direction == "A2S":
        if len(options.query) != 1:
            raise AsrError(f"--query takes one recording, got {len(options.query)} files")
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
    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.eval.snippet_retrieval import with_test_conditions
    from audio_sheet_retrieval.eval.summary import retrieval_stem, write_yaml
    from audio_sheet_retrieval.train.checkpoint import load_model_state

    if options.direction not in DB_KIND:
        raise ValueError(f"direction must be one of {tuple(DB_KIND)}, got {options.direction!r}")
    if options.n_queries < 1 or options.k < 1:
        raise AsrError(f"--n_queries and --k must be >= 1, got {options.n_queries} and {options.k}")
    config = with_test_conditions(exp.config, options.test_synth, options.test_tempo)
    synth, tempo = config["TEST_SYNTH"], float(config["TEST_TEMPO"])
    kind = DB_KIND[options.direction]
    query_kind = "audio" if kind == "sheet" else "sheet"
    query_inputs = _query_inputs(options, config) if options.query else None
    load_model_state(exp.model, exp.paths.params)
    pools: dict[str, SnippetPool] = {}

    def test_pool() -> SnippetPool:
        if not pools:
            pools.update(load_pools(exp.data_root, exp.split_file, config, kinds=("test",),
                                    progress=options.progress))
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
        out = identify(embed(query_inputs), db, options.k, exp.device)
        log(f"{' '.join(options.query)}: {len(query_inputs)} {query_kind} snippets, k={options.k}")
        log(format_ranking(out, options.top))
    if options.full_eval:
        pool = test_pool()
        out = evaluate_piece_id(pool_queries(pool, query_kind, options.n_queries), embed, db,
                                options.k, options.direction, exp.device, options.progress,
                                total=len(pool.pieces))
        log(format_piece_id(out))
        if options.dump_results:
            overridden = (synth != exp.config["TEST_SYNTH"]
                          or tempo != float(exp.config["TEST_TEMPO"]))
            stem = retrieval_stem(exp.paths.tag, options.direction,
                                  *((synth, tempo) if overridden else (None, None)))
            written = write_yaml({
                "ranks": [int(r) for r in out.ranks], "pieces": out.pieces, "best": out.best,
                "summary": out.summary, "direction": options.direction,
                "model": exp.paths.folder.name.removesuffix("_est_UV"),
                "estimate_UV": exp.paths.folder.name.endswith("_est_UV"),
                "config": Path(config_file).stem, "split": exp.split_file.stem,
                "test_synth": synth, "test_tempo": tempo, "k": options.k,
                "n_queries": options.n_queries}, exp.paths.folder / f"{stem}.yaml")
            log(f"results: {written}")
    if out is None:
        log("database ready; pass --full_eval to identify every test piece or --query FILE "
            "(the original's live microphone/GUI mode is not part of this rebuild)")
    return out
