#!/usr/bin/env python
"""Build MSMD-layout data from real scores (music21's corpus or your own files).

Examples
--------
Default collection (corpus solo piano + Bach chorales), two processes::

    python build_dataset.py --jobs 2

A few pieces, one synth, one tempo::

    python build_dataset.py --pieces bach/bwv846 'bach/bwv2*' --synths FluidR3Grand --tempi 1.0

Your own MusicXML, engraved by LilyPond::

    python build_dataset.py --pieces my_scores/*.musicxml --engraver lilypond --root data/mine

Plots of a built piece (alignment and sampled snippet pairs)::

    python build_dataset.py --plot bach__bwv259
"""

import argparse
import sys
from pathlib import Path

from audio_sheet_retrieval.config import settings
from audio_sheet_retrieval.errors import UsageError, run_cli


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2)."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from audio_sheet_retrieval.build.pipeline import DEFAULT_TEMPI, TEMPO_RANGE
    from audio_sheet_retrieval.build.synth import DEFAULT_SYNTHS, SYNTHS

    p = OneLineParser(description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=settings.DATA_ROOT_MSMD,
                   help="data root to write (default: DATA_ROOT_MSMD = %(default)s)")
    p.add_argument("--pieces", nargs="+", default=None,
                   help="corpus names, globs (quote them) or score files; default: the "
                        "corpus solo-piano works and the Bach chorales")
    p.add_argument("--demo", action="store_true",
                   help="build the small demo selection (2 piano works + 38 chorales)")
    p.add_argument("--quartets", action="store_true",
                   help="add the corpus string quartets, reduced to piano")
    p.add_argument("--engraver", choices=("verovio", "lilypond"), default="verovio")
    p.add_argument("--synths", nargs="+", default=list(DEFAULT_SYNTHS),
                   help=f"synths to render (known: {', '.join(SYNTHS)})")
    p.add_argument("--tempi", nargs="+", type=float, default=list(DEFAULT_TEMPI),
                   help=f"tempo ratios, {TEMPO_RANGE[0]} to {TEMPO_RANGE[1]} (1.0 = as written)")
    p.add_argument("--no_audio", action="store_true", help="keep features only, no FLAC files")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--force", action="store_true", help="rebuild pieces that are already built")
    p.add_argument("--seed", type=int, default=0, help="seed of the split files")
    p.add_argument("--plot", metavar="PIECE", default=None,
                   help="only write the alignment and snippet PNGs of a built piece")
    p.add_argument("--plot_dir", default=None, help="folder of the PNGs (default: <root>/plots)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: use 1 or more processes")
    if args.plot is not None and (not args.plot or "/" in args.plot or args.plot.startswith(".")):
        p.error(f"--plot {args.plot!r}: give the name of a piece folder of the data root")
    return args


def plot(args) -> int:
    from audio_sheet_retrieval.data.plots import plot_piece

    out = Path(args.plot_dir or Path(args.root) / "plots")
    for path in plot_piece(args.root, args.plot, out):
        print(path)
    return 0


def main() -> int:
    args = parse_args()
    if args.plot:
        return plot(args)
    from audio_sheet_retrieval.build.dataset import build_dataset
    from audio_sheet_retrieval.build.pipeline import BuildOptions
    from audio_sheet_retrieval.build.sources import default_specs, demo_specs, quartet_specs, resolve
    from audio_sheet_retrieval.build.synth import SynthError, check_synth, get_synth
    from audio_sheet_retrieval.build.workspace import RootBusyError

    try:
        options = BuildOptions(engraver=args.engraver, synths=tuple(args.synths),
                               tempi=tuple(args.tempi), keep_audio=not args.no_audio)
    except ValueError as err:
        raise UsageError(str(err)) from None
    try:
        for name in args.synths:
            check_synth(get_synth(name))
    except SynthError as err:
        raise UsageError(str(err)) from None
    specs = args.pieces or (demo_specs() if args.demo else default_specs())
    if args.quartets:
        specs = list(specs) + quartet_specs()
    try:
        sources = resolve(specs)
    except ValueError as err:
        raise UsageError(str(err)) from None
    root = Path(args.root)
    try:
        reports, manifest = build_dataset(sources, root, options, jobs=args.jobs, force=args.force,
                                          seed=args.seed)
    except RootBusyError as err:  # not bad input: the root is in use (exit 1)
        print(f"error: {err}", file=sys.stderr)
        return 1
    run = manifest["last_run"]
    print(f"built {run['built']}, skipped {run['skipped']} (already built), "
          f"failed {len(run['failed'])} of {run['requested']} pieces in {run['wall_seconds']} s")
    for name, error in run["failed"].items():
        print(f"  failed: {name}: {error}")
    totals = manifest["totals"]
    print(f"data root {root}: {totals['pieces']} pieces, {totals['pages']} pages, "
          f"{totals['aligned_noteheads']} aligned noteheads, "
          f"{totals['audio_hours_per_version']:.2f} h of audio per synth x tempo")
    print(f"splits: {root / manifest['splits']['all']}, {root / manifest['splits']['demo']}")
    for kind, usual in (("all", "all_split.yaml"), ("demo", "demo_split.yaml")):
        if Path(manifest["splits"][kind]).name != usual:
            print(f"note: {root / 'splits' / usual} holds other pieces and is left as it is; "
                  f"the {kind} split of the pieces built now is {root / manifest['splits'][kind]}")
    return 0 if run["built"] + run["skipped"] > 0 else 1


if __name__ == "__main__":
    run_cli(main)
