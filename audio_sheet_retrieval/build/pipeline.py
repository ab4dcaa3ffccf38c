"""Build one piece, or a whole collection, into the MSMD layout.

A build holds the data root's lock and writes each piece into its own work
folder, renamed to ``<root>/<piece>`` when complete (see
:mod:`audio_sheet_retrieval.build.workspace`), so an interrupted build never
leaves half a piece and two builds never share one. A piece is skipped on the
next run only when it is complete and current: its ``meta.yml`` names the data
format version, the build options and the content digest of its score, and
lists every file of the piece with its size, and all of these match.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from PIL import Image
from tqdm import tqdm

from audio_sheet_retrieval.audio.spectrogram import FPS, onset_frame, spectrogram
from audio_sheet_retrieval.build.align import match_noteheads
from audio_sheet_retrieval.build.checks import check_engraving, check_performances
from audio_sheet_retrieval.build.engraving import EngravedScore
from audio_sheet_retrieval.build.midi import end_time_s, write_midi
from audio_sheet_retrieval.build.sources import PieceSource
from audio_sheet_retrieval.build.synth import DEFAULT_SYNTHS, SYNTHS, render
from audio_sheet_retrieval.build.workers import die_with_parent
from audio_sheet_retrieval.build.workspace import (
    Workspace,
    check_replaceable,
    remove_work_tree,
)
from audio_sheet_retrieval.data.layout import (
    BUILDER_KEY,
    DATA_FORMAT_VERSION,
    FORMAT_KEY,
    PIECE_NAME,
    feature_path,
    page_file,
    performance_name,
    read_meta,
)
from audio_sheet_retrieval.data.mung import SYSTEM_CLASS, CropObject, write_mung
from audio_sheet_retrieval.data.unroll import nearest_system
from audio_sheet_retrieval.digests import file_digest

DEFAULT_TEMPI = (0.9, 1.0, 1.1)
TEMPO_RANGE = (0.25, 4.0)
"""Smallest and largest tempo ratio a build accepts (1.0 = as written)."""
ENGRAVERS = ("verovio", "lilypond")


@dataclass(frozen=True)
class BuildOptions:
    """What to build for each piece."""

    engraver: str = "verovio"
    synths: tuple[str, ...] = DEFAULT_SYNTHS
    tempi: tuple[float, ...] = DEFAULT_TEMPI
    keep_audio: bool = True

    def __post_init__(self) -> None:
        """Check every option (``ValueError`` with one line naming the option)."""
        if self.engraver not in ENGRAVERS:
            raise ValueError(f"engraver {self.engraver!r}: use {' or '.join(ENGRAVERS)}")
        if not self.synths:
            raise ValueError("synths: give at least one")
        for name in self.synths:
            if name not in SYNTHS:
                raise ValueError(f"synths: unknown synth {name!r}; choose from {', '.join(SYNTHS)}")
        if len(set(self.synths)) != len(self.synths):
            raise ValueError(f"synths {' '.join(self.synths)}: each synth once")
        if not self.tempi:
            raise ValueError("tempi: give at least one tempo ratio")
        lo, hi = TEMPO_RANGE
        for tempo in self.tempi:
            if not isinstance(tempo, (int, float)) or not math.isfinite(tempo) \
                    or not lo <= tempo <= hi:
                raise ValueError(f"tempi: {tempo!r} is not a tempo ratio from {lo} to {hi} "
                                 "(1.0 = as written, 1.1 = 10 % faster)")
        if len({int(round(t * 1000)) for t in self.tempi}) != len(self.tempi):
            raise ValueError(f"tempi {' '.join(map(str, self.tempi))}: each tempo once "
                             "(they are told apart to 1/1000)")

    def digest(self) -> str:
        """Short hash of the options; a piece built with other options is rebuilt."""
        synths = [repr(SYNTHS[name]) if name in SYNTHS else name for name in self.synths]
        text = json.dumps({**asdict(self), "format": DATA_FORMAT_VERSION, "synth_specs": synths},
                          sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclass
class PieceReport:
    """Outcome of building one piece."""

    name: str
    status: str  # "built", "skipped" or "failed"
    error: str = ""
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


def engrave_source(source: PieceSource, engraver: str) -> EngravedScore:
    """Engrave a piece with the chosen engraver."""
    from audio_sheet_retrieval.build.sources import load_musicxml

    if engraver == "lilypond" or source.is_lilypond:
        from audio_sheet_retrieval.build import engrave_lilypond

        if source.is_lilypond:
            return engrave_lilypond.engrave(source.path, is_lilypond=True)
        return engrave_lilypond.engrave(load_musicxml(source))
    if engraver != "verovio":
        raise ValueError(f"unknown engraver {engraver!r}; use verovio or lilypond")
    from audio_sheet_retrieval.build import engrave_verovio

    return engrave_verovio.engrave(load_musicxml(source))


def _write_score(score_dir: Path, engraved: EngravedScore, event_idx: np.ndarray,
                 perfs: list[tuple[str, float]]) -> None:
    """Pages, MuNG files and coordinate arrays of one engraved score."""
    for sub in ("img", "mung", "coords"):
        (score_dir / sub).mkdir(parents=True, exist_ok=True)
    onsets_s = engraved.note_events[:, 0]
    for page, image in enumerate(engraved.pages):
        Image.fromarray(image).save(score_dir / "img" / page_file(page, ".png"))
        objects, system_ids, corners = [], {}, []
        for k, s in enumerate(engraved.systems):
            if s.page == page:
                system_ids[k] = len(objects)
                objects.append(CropObject(len(objects), SYSTEM_CLASS, s.top, s.left,
                                          s.bottom - s.top, s.right - s.left))
                corners.append([[s.top, s.left], [s.top, s.right],
                                [s.bottom, s.right], [s.bottom, s.left]])
        centres = []
        for i, h in enumerate(engraved.noteheads):
            if h.page != page:
                continue
            row, col = h.center
            centres.append([row, col])
            data = {"midi_pitch_code": int(h.pitch), "staff": int(h.staff), "engraver_ref": h.ref}
            if event_idx[i] >= 0:
                for perf, tempo in perfs:
                    t = float(onsets_s[event_idx[i]] / tempo)
                    data[f"{perf}_note_event_idx"] = int(event_idx[i])
                    data[f"{perf}_onset_seconds"] = round(t, 6)
                    data[f"{perf}_onset_frame"] = int(onset_frame(t))
            system = nearest_system(engraved.systems, page, row)
            objects.append(CropObject(len(objects), "notehead-full" if h.filled else "notehead-empty",
                                      h.top, h.left, h.height, h.width,
                                      [system_ids[system]] if system in system_ids else [], data))
        write_mung(objects, score_dir / "mung" / page_file(page, ".xml"))
        np.save(score_dir / "coords" / f"notes_{page + 1:02d}.npy",
                np.asarray(centres, dtype=np.float32).reshape(-1, 2))
        np.save(score_dir / "coords" / f"systems_{page + 1:02d}.npy",
                np.asarray(corners, dtype=np.float32).reshape(-1, 4, 2))


def piano_roll(note_events: np.ndarray, n_frames: int, fps: int = FPS) -> np.ndarray:
    """(128, n_frames) uint8 piano roll of note events (1 while a note sounds)."""
    roll = np.zeros((128, n_frames), dtype=np.uint8)
    for onset, pitch, dur in note_events[:, :3]:
        a = int(onset_frame(onset, fps))
        b = max(a + 1, int(np.ceil((onset + dur) * fps)))
        roll[int(pitch), a:min(b, n_frames)] = 1
    return roll


def _write_performance(perf_dir: Path, synth: str, events: np.ndarray, keep_audio: bool,
                       timings: dict) -> float:
    """Render, featurize and write one performance; returns its duration in seconds."""
    t0 = time.perf_counter()
    audio = render(synth, events)
    t1 = time.perf_counter()
    spec = spectrogram(audio)
    t2 = time.perf_counter()
    timings.setdefault("synth_s", {}).setdefault(synth, 0.0)
    timings["synth_s"][synth] += t1 - t0
    timings["spectrogram_s"] = timings.get("spectrogram_s", 0.0) + t2 - t1
    (perf_dir / "features").mkdir(parents=True, exist_ok=True)
    if keep_audio:
        sf.write(perf_dir / f"{perf_dir.name}.flac", audio, 22050, format="FLAC")
    np.save(feature_path(perf_dir, "spec"), spec)
    np.save(feature_path(perf_dir, "notes"), events.astype(np.float64))
    np.save(feature_path(perf_dir, "onsets"), onset_frame(events[:, 0]))
    np.save(feature_path(perf_dir, "midi"), piano_roll(events, spec.shape[1]))
    return len(audio) / 22050.0


def piece_files(folder: Path) -> dict[str, int]:
    """Every file of a piece folder but ``meta.yml``: relative path -> size in bytes."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "meta.yml"}


def stale_reason(folder: Path, source: PieceSource, options: BuildOptions,
                 source_sha1: str) -> str | None:
    """Why ``folder`` is not a complete, current build of ``source``; None when it is.

    Complete and current: ``meta.yml`` names this data format version, these
    options, this content of the score file and the same reduction, and every
    file it lists is there with its size.
    """
    meta = read_meta(folder)
    if meta is None:
        return "no readable meta.yml"
    if meta.get(FORMAT_KEY) != DATA_FORMAT_VERSION:
        return f"data format {meta.get(FORMAT_KEY, 1)}, not {DATA_FORMAT_VERSION}"
    if meta.get(BUILDER_KEY) != options.digest():
        return "built with other options"
    if meta.get("source_sha1") != source_sha1:
        return f"{source.path} has changed (or is another score of the same name)"
    if meta.get("reduced_to_piano") != source.reduce:
        return "reduced to piano differently"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return "meta.yml lists no files"
    for rel, size in files.items():
        path = Path(folder) / str(rel)
        if not path.is_file() or path.stat().st_size != size:
            return f"{rel} is missing or has changed"
    return None


def _failure(name: str, err: BaseException, start: float) -> PieceReport:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if not isinstance(err, (ValueError, RuntimeError, OSError)):
        msg = f"{type(err).__name__}: {msg} ({traceback.extract_tb(err.__traceback__)[-1].name})"
    return PieceReport(name, "failed", error=msg, seconds=time.perf_counter() - start)


def build_piece(source: PieceSource, root: Path, options: BuildOptions, force: bool = False,
                workspace: Workspace | None = None) -> PieceReport:
    """Build one piece into ``root/<name>``; never raises for a bad piece (failures are reported).

    Parameters
    ----------
    source : PieceSource
    root : Path
        Data root.
    options : BuildOptions
    force : bool
        Rebuild even when the piece is there, complete and current.
    workspace : Workspace, optional
        The build's (locked) workspace of ``root``; without one, the root is
        locked for this piece alone.

    Raises
    ------
    RootBusyError
        Without ``workspace``, when another build holds the root.
    """
    if workspace is None:
        with Workspace(root) as ws:
            return build_piece(source, root, options, force, ws)
    start = time.perf_counter()
    if not PIECE_NAME.match(source.name):
        return PieceReport(source.name, "failed", error=f"{source.name!r} is not a valid piece name")
    final = Path(root) / source.name
    try:
        source_sha1 = file_digest(source.path, "sha1")
        if not force and stale_reason(final, source, options, source_sha1) is None:
            return PieceReport(source.name, "skipped")
        check_replaceable(final)
    except (ValueError, OSError) as err:
        return _failure(source.name, err, start)
    tmp = None
    timings: dict = {}
    try:
        tmp = workspace.new_piece_folder(source.name)
        t = time.perf_counter()
        engraved = engrave_source(source, options.engraver)
        timings["engrave_s"] = time.perf_counter() - t
        check_engraving(source, engraved)  # notation, MIDI and pages agree, or the piece fails
        timings["pages"] = len(engraved.pages)
        event_idx = match_noteheads(engraved.noteheads, engraved.note_events)
        if (event_idx >= 0).sum() == 0:
            raise ValueError("no notehead could be aligned to a MIDI note")
        perfs = [(performance_name(source.name, tempo, synth), tempo)
                 for tempo in options.tempi for synth in options.synths]
        score_name = f"{source.name}_{'ly' if engraved.engraver == 'lilypond' else engraved.engraver}"
        _write_score(tmp / "scores" / score_name, engraved, event_idx, perfs)
        (tmp / f"{source.name}{engraved.source_suffix}").write_text(engraved.source)
        (tmp / f"{source.name}.mid").write_bytes(write_midi(engraved.note_events))
        duration = 0.0
        for tempo in options.tempi:
            events = engraved.note_events.copy()
            events[:, [0, 2]] /= tempo
            for synth in options.synths:
                perf_dir = tmp / "performances" / performance_name(source.name, tempo, synth)
                duration = _write_performance(perf_dir, synth, events, options.keep_audio, timings)
                if tempo == 1.0:
                    timings.setdefault("audio_s", duration)
        check_performances(source.name, tmp / "performances", engraved.note_events, dict(perfs))
        n_onset_heads = sum(h.onset_s is not None for h in engraved.noteheads)
        meta = {
            "piece": source.name, FORMAT_KEY: DATA_FORMAT_VERSION,
            "source": str(source.path), "source_sha1": source_sha1,
            "reduced_to_piano": source.reduce,
            "engraver": engraved.engraver, "score": score_name,
            "pages": len(engraved.pages), "systems": len(engraved.systems),
            "noteheads": len(engraved.noteheads), "onset_noteheads": int(n_onset_heads),
            "aligned_noteheads": int((event_idx >= 0).sum()),
            "note_events": int(len(engraved.note_events)),
            "unaligned_note_events": int(len(engraved.note_events) - len(set(event_idx[event_idx >= 0]))),
            "duration_s_at_tempo_1": round(end_time_s(engraved.note_events), 3),
            "performances": [p for p, _ in perfs],
            "build_options": asdict(options), BUILDER_KEY: options.digest(),
            "timings": {k: (round(v, 4) if isinstance(v, float) else
                            {a: round(b, 4) for a, b in v.items()} if isinstance(v, dict) else v)
                        for k, v in timings.items()},
            "files": piece_files(tmp),
        }
        (tmp / "meta.yml").write_text(yaml.safe_dump(meta, sort_keys=False))
        workspace.install(tmp)
        return PieceReport(source.name, "built", seconds=time.perf_counter() - start, timings=timings)
    except Exception as err:  # one failing piece never stops the others
        if tmp is not None and os.path.lexists(tmp):
            try:
                remove_work_tree(tmp, root)
            except OSError:
                pass  # left for the next build to clear
        return _failure(source.name, err, start)


def _build_star(args) -> PieceReport:
    return build_piece(*args)


def build_collection(sources: list[PieceSource], root: Path, options: BuildOptions,
                     jobs: int = 1, force: bool = False,
                     workspace: Workspace | None = None) -> list[PieceReport]:
    """Build many pieces in parallel with a progress bar; returns one report each.

    Parameters
    ----------
    sources : list of PieceSource
        Pieces of distinct names.
    root : Path
        Data root.
    options : BuildOptions
    jobs : int
        Worker processes (at least 1); each ends when this process ends.
    force : bool
        Rebuild pieces that are complete and current.
    workspace : Workspace, optional
        The (locked) workspace of ``root``; without one, the root is locked for
        the call.

    Raises
    ------
    ValueError
        For ``jobs < 1`` or two sources of one name.
    RootBusyError
        Without ``workspace``, when another build holds the root.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs {jobs!r}: use 1 or more worker processes")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two sources are named {next(n for n in names if names.count(n) > 1)!r}")
    if workspace is None:
        with Workspace(root) as ws:
            return build_collection(sources, root, options, jobs, force, ws)
    tasks = [(s, root, options, force, workspace) for s in sources]
    reports = []
    bar = tqdm(total=len(tasks), desc="building pieces", unit="piece")
    if jobs <= 1:
        for task in tasks:
            reports.append(_build_star(task))
            bar.update()
            bar.set_postfix(failed=sum(r.status == "failed" for r in reports))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for report in pool.map(_build_star, tasks, chunksize=1):
                reports.append(report)
                bar.update()
                bar.set_postfix(failed=sum(r.status == "failed" for r in reports))
    bar.close()
    return reports
