"""k-nearest-neighbour search in a snippet database and piece ranking by votes.

Each query snippet's ``k`` nearest database entries (cosine) vote for their
piece; pieces are ranked by votes, ties broken by the best similarity of any
query snippet to any of the piece's entries, then by name. A piece without
votes ranks after every voted piece (the original gave it rank
``len(list)``, tying it with the last voted piece).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audio_sheet_retrieval.eval.snippet_db import SnippetDB


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
        Votes or vote scores; higher is better, 0 means no votes.
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
    scores : np.ndarray, shape (P,), float64, optional
        The figure the pieces are ranked by (before the tie breaks): the votes
        divided by ``snippets ** VOTE_NORMS[vote_norm]``; the votes when not given.
    snippets : np.ndarray, shape (P,), int64, optional
        Database snippets of each piece.
    vote_norm : {'none', 'sqrt', 'size'}
        How ``scores`` were made from the votes.
    """

    piece_names: list[str]
    votes: np.ndarray
    best_similarity: np.ndarray
    order: np.ndarray
    scores: np.ndarray | None = None
    snippets: np.ndarray | None = None
    vote_norm: str = "none"

    def __post_init__(self) -> None:
        if self.scores is None:
            self.scores = np.asarray(self.votes, dtype=np.float64)

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

    @property
    def score_name(self) -> str:
        """What :attr:`scores` are, in words: ``votes``, ``votes/snippet``, ``votes/sqrt(snippets)``."""
        return {"none": "votes", "sqrt": "votes/sqrt(snippets)", "size": "votes/snippet"}[self.vote_norm]


VOTE_NORMS = {"none": 0.0, "sqrt": 0.5, "size": 1.0}
"""Vote weightings: a piece's votes are divided by its number of snippets to this power."""


def identify(query_codes: np.ndarray, db: SnippetDB, k: int = 25,
             device: str | torch.device = "cpu", vote_norm: str = "none") -> PieceRanking:
    """Rank the database's pieces for a set of query snippet codes by k-NN votes.

    Parameters
    ----------
    query_codes : np.ndarray, shape (Q, D)
        Codes of one query's snippets (e.g. 100 excerpts of a recording).
    db : SnippetDB
    k : int
        Votes per query snippet.
    device : str or torch.device
    vote_norm : {'none', 'sqrt', 'size'}
        Rank by votes (the original), or by votes divided by the square root of,
        or by, the piece's number of database snippets. Long pieces have many
        snippets and so collect votes by chance (they become hubs); normalising
        counters that.

    Returns
    -------
    PieceRanking
    """
    if vote_norm not in VOTE_NORMS:
        raise ValueError(f"vote_norm must be one of {tuple(VOTE_NORMS)}, got {vote_norm!r}")
    nn = search(query_codes, db, k, device=device)
    votes = np.bincount(db.piece_ids[nn.index].ravel(), minlength=db.n_pieces).astype(np.int64)
    sizes = np.maximum(np.bincount(db.piece_ids, minlength=db.n_pieces), 1)
    scores = votes / sizes ** VOTE_NORMS[vote_norm]
    order = rank_pieces(scores, nn.piece_best, db.piece_names)
    return PieceRanking(list(db.piece_names), votes, nn.piece_best, order, scores.astype(np.float64),
                        sizes.astype(np.int64), vote_norm)
