"""The training loop: ranking loss on augmented pairs, early stopping on validation MRR.

Read it top to bottom: set up -> (resume) -> per epoch: train on
``epoch_samples`` pairs, validate, keep the best, maybe refine -> save.

* Adam (lr 0.002), batch 100, L2 1e-5; an *epoch* is 10,000 training pairs.
* After each epoch the CCA projection used for inference is refitted on
  2,000 training pairs embedded in eval mode (a small ``refine_cca``), then
  validation loss and audio-to-sheet MRR are measured on 1,000 fixed pairs.
* The best epoch by MRR is kept (parameters + optimizer state). When patience
  runs out the best state is reloaded and the learning rate halved (a
  *refinement step*), up to ``refinement_steps`` times.
* The pools are checked first: a training batch needs ``batch_size`` distinct
  pairs, validation at least 2 candidates.
* Divergence stops training with one line naming the epoch and step: a
  non-finite loss, non-finite features before the CCA layer (the fit would
  fail), or non-finite parameters after an epoch.
* Every checkpoint and the results YAML record what was trained on (model
  spec, config, split digest and pieces, data manifest digest; see
  :mod:`~audio_sheet_retrieval.train.checkpoint`).
* After every epoch the full state is written atomically, so ``--resume``
  continues an interrupted run exactly: batch ``s`` of epoch ``e`` holds
  entities chosen by a generator seeded with ``(seed, e)`` and is augmented
  by its own generator seeded with ``(seed, e, 1, s)`` (:class:`EpochBatches`).
* With ``TrainOptions.workers`` > 0 the batches are made by that many
  worker processes of a :class:`torch.utils.data.DataLoader` while the
  network trains, in order; since every batch has its own generator, the
  pairs are the same with any number of workers.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from audio_sheet_retrieval.data.pools import SnippetPool
from audio_sheet_retrieval.errors import AsrError
from audio_sheet_retrieval.eval.metrics import mean_reciprocal_rank, ranks_from_similarity
from audio_sheet_retrieval.train.checkpoint import (
    load_checkpoint,
    load_training_state,
    model_meta,
    save_atomic,
)
from audio_sheet_retrieval.train.curves import plot_curves, write_results
from audio_sheet_retrieval.train.experiment import ExperimentPaths
from audio_sheet_retrieval.train.refine import refine_cca


@dataclass
class TrainState:
    """Everything besides weights that a resumed run needs."""

    epoch: int = 0
    lr: float = 0.002
    best_mrr: float = -1.0
    best_epoch: int = -1
    patience_left: int = 0
    refinements_left: int = 0
    done: bool = False
    history: list = field(default_factory=list)


@dataclass(frozen=True)
class TrainOptions:
    """Loop sizes (defaults as in the original) and bookkeeping."""

    epoch_samples: int = 10_000
    n_valid: int = 1_000
    max_epochs: int | None = None  # None: the model spec's max_epochs
    seed: int = 0
    dump: bool = True
    max_minutes: float | None = None  # wall-clock budget: no epoch is started that would overrun it
    cca_pairs: int = 2_000  # training pairs the CCA projection is refitted on after each epoch
    workers: int = 0  # processes making the training batches while the network trains (0: inline)


def _epoch_indices(n: int, count: int, seed: int, epoch: int) -> np.ndarray:
    """``count`` entity indices for one epoch: shuffled passes through ``n`` entities."""
    rng = np.random.default_rng([seed, epoch])
    reps = math.ceil(count / n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count]


class EpochBatches(Dataset):
    """The augmented training batches of one epoch, batch ``step`` on demand.

    Batch ``step`` holds the entities ``order[step * batch_size:(step + 1) *
    batch_size]``, augmented with a generator seeded with ``(seed, epoch, 1,
    step)``: a batch does not depend on which batches were made before it,
    nor by which process.

    Parameters
    ----------
    pool : SnippetPool
    order : np.ndarray, shape (steps * batch_size,)
        Entity indices of the epoch (:func:`_epoch_indices`).
    batch_size, seed, epoch : int
    """

    def __init__(self, pool: SnippetPool, order: np.ndarray, batch_size: int, seed: int, epoch: int):
        self.pool, self.order, self.batch_size = pool, order, batch_size
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.order) // self.batch_size

    def __getitem__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= step < len(self):
            raise IndexError(step)
        rng = np.random.default_rng([self.seed, self.epoch, 1, step])
        return self.pool.pairs(self.order[step * self.batch_size:(step + 1) * self.batch_size],
                               augment=True, rng=rng)


def epoch_batches(batches: EpochBatches, workers: int = 0):
    """Iterate over ``batches`` in order, made inline or by ``workers`` processes.

    Yields
    ------
    sheets : np.ndarray or Tensor, shape (B, staff_height, sheet_context), uint8
    specs : np.ndarray or Tensor, shape (B, bins, spec_context), float32
        Tensors (in shared memory) when made by workers.
    """
    if workers <= 0:
        return (batches[step] for step in range(len(batches)))
    # a private generator: the loader's base seed must not consume the global torch RNG
    return iter(DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers,
                           prefetch_factor=2, generator=torch.Generator().manual_seed(0)))


def validation_pairs(pool: SnippetPool, n_valid: int, seed: int = 0):
    """A fixed set of ``n_valid`` unaugmented validation pairs (shuffled once)."""
    idx = np.random.default_rng(seed).permutation(len(pool))[:n_valid]
    return pool.pairs(np.sort(idx), augment=False)


def evaluate_pairs(model, sheets: np.ndarray, specs: np.ndarray, batch_size: int) -> tuple[float, float]:
    """(mean ranking loss, audio-to-sheet MRR) of fixed pairs, in eval mode."""
    z_sheet = model.embed_sheet(sheets, batch_size=batch_size)
    z_audio = model.embed_spec(specs, batch_size=batch_size)
    with torch.no_grad():
        losses = [float(model.loss(z_sheet[lo:lo + batch_size], z_audio[lo:lo + batch_size]))
                  for lo in range(0, len(z_sheet) - 1, batch_size)]
        sim = (z_audio @ z_sheet.T).cpu().numpy()
    return float(np.mean(losses)), mean_reciprocal_rank(ranks_from_similarity(sim))


def _log(line: str) -> None:
    print(line, flush=True)


def _save_state(path, model, optimizer, state: TrainState, meta: dict) -> None:
    save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "state": asdict(state), "torch_rng": torch.get_rng_state(), "meta": meta}, path)


RESULT_FIELDS = ("model", "split_file", "split_digest", "data_manifest_sha1", "train_pieces",
                 "valid_pieces")
"""Fields of the checkpoints' ``meta`` repeated in the results YAML."""


def check_pools(train_pool: SnippetPool, valid_pool: SnippetPool, batch_size: int) -> None:
    """Refuse pools too small to train on (one line naming the pool's pieces and the fix).

    A training batch needs ``batch_size`` distinct pairs (fewer would repeat
    pairs inside a batch, which the ranking loss counts as negatives of
    themselves and the CCA layer as a degenerate fit); the validation ranking
    needs at least 2 candidates (with one, every MRR is 1.0).
    """
    train_pool.require(batch_size, "train", f"a training batch of {batch_size}")
    valid_pool.require(2, "valid", "the validation ranking")


def _diverged(epoch: int, step: int, detail: str, paths: ExperimentPaths) -> AsrError:
    return AsrError(f"training diverged at epoch {epoch} step {step} ({detail}); lower the "
                    f"learning rate or check the data (last good state: {paths.last_state})")


def _finite_parameters(model) -> bool:
    with torch.no_grad():
        return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


def fit(model, train_pool: SnippetPool, valid_pool: SnippetPool, paths: ExperimentPaths,
        device: torch.device, options: TrainOptions = TrainOptions(), resume: bool = False,
        log=_log, record: dict | None = None) -> TrainState:
    """Train ``model`` and write its best parameters to ``paths.params``.

    Parameters
    ----------
    model : TwoBranchModel
    train_pool, valid_pool : SnippetPool
    paths : ExperimentPaths
    device : torch.device
    options : TrainOptions
    resume : bool
        Continue from ``paths.last_state`` (an error if it is missing).
    log : callable
        Receives one line per epoch.
    record : dict, optional
        Plain data stored in every checkpoint's ``meta`` (see
        :func:`~audio_sheet_retrieval.train.checkpoint.model_meta`): ``model``
        (name), ``config``, the split's provenance. ``--resume`` refuses a
        state of another model or split.

    Returns
    -------
    TrainState
        The final state, with the per-epoch history.

    Raises
    ------
    AsrError
        For pools too small to train on (:func:`check_pools`), a ``--resume``
        file that is not a training state of this experiment, divergence, or
        a checkpoint that cannot be written.
    """
    spec = model.spec
    check_pools(train_pool, valid_pool, spec.batch_size)
    model.to(device)
    torch.manual_seed(options.seed)
    optimizer = model.make_optimizer()
    meta = model_meta(model, **(record or {}))
    state = TrainState(lr=spec.lr, patience_left=spec.patience, refinements_left=spec.refinement_steps)
    max_epochs = options.max_epochs if options.max_epochs is not None else spec.max_epochs
    if resume:
        ckpt = load_training_state(paths.last_state, model, optimizer, meta)
        try:
            state = TrainState(**ckpt["state"])
            torch.set_rng_state(ckpt["torch_rng"])
        except (TypeError, RuntimeError) as err:
            raise AsrError(f"{paths.last_state}: its training state is unreadable "
                           f"({str(err).splitlines()[0][:100]}); start over without --resume") from None
        log(f"resumed {paths.last_state} after epoch {state.epoch}")
    sheets_v, specs_v = validation_pairs(valid_pool, options.n_valid, options.seed)
    steps = max(1, options.epoch_samples // spec.batch_size)
    started = time.perf_counter()
    while not state.done and state.epoch < max_epochs:
        t0 = time.perf_counter()
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = state.lr
        order = _epoch_indices(len(train_pool), steps * spec.batch_size, options.seed, state.epoch)
        batches = epoch_batches(EpochBatches(train_pool, order, spec.batch_size, options.seed,
                                             state.epoch), options.workers)
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {state.epoch + 1}", unit="batch", leave=False)
        for step, (sheets, specs) in zip(bar, batches):
            try:
                z_sheet, z_audio = model(model.prepare_sheet(sheets).to(device),
                                         model.prepare_spec(specs).to(device))
            except (FloatingPointError, torch.linalg.LinAlgError) as err:
                detail = str(err).splitlines()[0] if isinstance(err, FloatingPointError) \
                    else "the CCA fit failed on non-finite or degenerate features"
                raise _diverged(state.epoch + 1, step + 1, detail, paths) from None
            loss = model.loss(z_sheet, z_audio)
            if not torch.isfinite(loss):
                raise _diverged(state.epoch + 1, step + 1, f"loss is {float(loss)}", paths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if not _finite_parameters(model):
            raise _diverged(state.epoch + 1, steps, "non-finite parameters after the update", paths)
        if spec.projection == "cca" and options.cca_pairs:
            # fit the inference projection on eval-mode features: the batch-norm layers
            # behave differently in training, so statistics gathered there do not fit
            refine_cca(model, train_pool, options.cca_pairs, seed=options.seed + state.epoch,
                       progress=False)
        valid_loss, valid_mrr = evaluate_pairs(model, sheets_v, specs_v, spec.batch_size)
        state.epoch += 1
        improved = valid_mrr >= state.best_mrr
        state.history.append({"epoch": state.epoch, "train_loss": float(np.mean(losses)),
                              "valid_loss": valid_loss, "valid_mrr": valid_mrr, "lr": state.lr,
                              "seconds": round(time.perf_counter() - t0, 2)})
        if improved:
            state.best_mrr, state.best_epoch = valid_mrr, state.epoch
            state.patience_left = spec.patience if state.refinements_left == spec.refinement_steps \
                else spec.refinement_patience
            if options.dump:
                save_atomic({"model": model.state_dict(), "meta": meta}, paths.params)
                save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "meta": meta}, paths.best_state)
        else:
            state.patience_left -= 1
            if state.patience_left <= 0:
                if state.refinements_left <= 0 or not options.dump:
                    state.done = True
                else:
                    best = load_checkpoint(paths.best_state, map_location=device)
                    model.load_state_dict(best["model"])
                    optimizer.load_state_dict(best["optimizer"])
                    state.refinements_left -= 1
                    state.lr *= spec.lr_multiplier
                    state.patience_left = spec.refinement_patience
                    log(f"refinement step: best epoch {state.best_epoch} reloaded, lr {state.lr:g}")
        h = state.history[-1]
        log(f"epoch {state.epoch}: train loss {h['train_loss']:.4f}, valid loss {h['valid_loss']:.4f}, "
            f"valid MRR {valid_mrr:.4f}{' (best)' if improved else ''}, {h['seconds']:.0f} s")
        if options.dump:
            _save_state(paths.last_state, model, optimizer, state, meta)
            write_results(state.history, paths.results, best_epoch=state.best_epoch,
                          **{k: meta[k] for k in RESULT_FIELDS if k in meta})
            plot_curves(state.history, paths.curves_png, title=f"{paths.folder.name} {paths.tag}")
        # stop when another epoch like this one would overrun the budget
        if (options.max_minutes is not None
                and time.perf_counter() - started + h["seconds"] > 60 * options.max_minutes):
            log(f"time budget of {options.max_minutes:g} min used up after epoch {state.epoch} "
                "(--resume continues)")
            break
    return state
