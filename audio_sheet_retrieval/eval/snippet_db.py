"""Snippet databases: the codes of one view's snippets of every piece, cached as ``.npz``.

A database holds one code per snippet of every test piece (sheet snippets for
audio queries, A2S; spectrogram excerpts for sheet queries, S2A) and the piece
each belongs to. Everything model-specific enters as an *embedding function*
``embed(inputs) -> codes``, so databases can be built from oracle or random
embeddings too. A database is cached as ``.npz`` (no pickle) with a
fingerprint of the parameters, config, split, data root and test performance;
a stale cache is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from audio_sheet_retrieval.atomic import atomic_path
from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.digests import file_digest
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.summary import tempo_code

KINDS = ("sheet", "audio")
"""Database kinds: the view stored in the database."""
DB_VERSION = 1

Embed = Callable[[np.ndarray], np.ndarray]
"""Inputs ``(N, ...)`` -> unit-norm codes ``(N, D)`` float32."""


# =================================================================== fingerprints


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
        Data root the pool was read from (and the SHA-256 of its ``manifest.yaml``,
        which every build rewrites, if it has one).
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
            "data_manifest_sha256": (file_digest(Path(data_root) / "manifest.yaml")
                                     if (Path(data_root) / "manifest.yaml").is_file() else "none"),
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
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, version=np.int64(DB_VERSION), kind=np.str_(self.kind),
                     codes=self.codes.astype(np.float32), piece_ids=self.piece_ids.astype(np.int64),
                     piece_names=np.array(self.piece_names, dtype=str),
                     fingerprint=np.str_(json.dumps(self.fingerprint, sort_keys=True)),
                     **({} if self.locations is None else
                        {"locations": self.locations.astype(np.float32)}))
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
