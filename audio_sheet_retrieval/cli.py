"""``asr``: identify a recording among your scores, or locate it in them.

Examples
--------
::

    asr identify recording.flac --scores my_scores/         # ranked pieces with vote shares
    asr locate excerpt.wav --scores my_scores/piece.musicxml  # page, system, x of each moment
    asr models                                              # the shipped models

Scores may be MusicXML, .mxl, kern, ABC or LilyPond files (engraved here), or
page images (PNG, JPEG) and PDFs (staff systems detected). The pages of one
score are one score when they are in a sub-folder of their own or named
<score>_p<N>.png (op1_p1.png, op1_p2.png, ...). Piano scores only: systems
that are not grand staves are left out. Recordings may be WAV, FLAC, OGG or
MP3 at any sample rate. The library of a set of scores is cached in
$XDG_CACHE_HOME/audio_sheet_retrieval (~/.cache/...) unless --cache says where.

Exit status: 0 done, 1 a file or run failed (one line on stderr), 2 wrong options.
"""

from __future__ import annotations

import argparse

from audio_sheet_retrieval.errors import UsageError, run_cli


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("identify", "rank the scores for a recording"),
                       ("locate", "find where each moment of a recording is in the scores")):
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("recording", help="WAV, FLAC, OGG or MP3 file")
        s.add_argument("--scores", nargs="+", required=True, help="score files or folders")
        s.add_argument("--model", default=None, help="shipped model name (see `asr models`)")
        s.add_argument("--params", default=None,
                       help="your own parameters file (with --model_file and --config)")
        s.add_argument("--model_file", default=None, help="models/*.py of --params")
        s.add_argument("--config", default=None, help="exp_configs/*.yaml of --params")
        s.add_argument("--cache", "--db", dest="cache", default=None, metavar="FILE",
                       help="library cache file or folder (default: one file per set of scores in "
                            "$XDG_CACHE_HOME/audio_sheet_retrieval or ~/.cache/audio_sheet_retrieval)")
        s.add_argument("--rebuild", action="store_true", help="rebuild the library cache")
        s.add_argument("--device", default="cpu")
        if name == "identify":
            s.add_argument("--k", type=int, default=5, help="neighbours (votes) per excerpt")
            s.add_argument("--top", type=int, default=10, help="pieces to print")
            s.add_argument("--vote_norm", choices=("none", "sqrt", "size"), default="size",
                           help="divide a piece's votes by (a power of) its number of snippets")
        else:
            s.add_argument("--hop_s", type=float, default=1.0, help="seconds between excerpts")
    sub.add_parser("models", help="list the shipped models")
    return p


def _check_usage(args: argparse.Namespace) -> None:
    """A wrong command line (bad option values, paths that do not exist) is a
    :class:`UsageError` (exit status 2), caught before any work."""
    from pathlib import Path

    from audio_sheet_retrieval import pretrained

    if args.params and not (args.model_file and args.config):
        raise UsageError("--params needs --model_file models/<x>.py and --config exp_configs/<y>.yaml")
    if args.model and args.model not in pretrained.available():
        raise UsageError(f"--model {args.model}: no such shipped model (shipped: "
                         f"{', '.join(pretrained.available()) or 'none'}; see `asr models`)")
    if args.command == "identify" and (args.k < 1 or args.top < 1):
        raise UsageError(f"--k and --top must be at least 1 (got {args.k} and {args.top})")
    if args.command == "locate" and not 0 < args.hop_s < 3600:
        raise UsageError(f"--hop_s must be a positive number of seconds (got {args.hop_s})")
    for flag, path in [("recording", args.recording), *(("--scores", p) for p in args.scores),
                       ("--params", args.params), ("--model_file", args.model_file),
                       ("--config", args.config)]:
        if path and not Path(path).exists():
            raise UsageError(f"{path}: no such file or folder ({flag}); check the path")


def _model(args):
    """(model, parameters id) from the flags: a shipped model or the user's own."""
    from audio_sheet_retrieval import pretrained
    from audio_sheet_retrieval.digests import file_digest
    from audio_sheet_retrieval.train.experiment import parse_device

    device = parse_device(args.device)
    if args.params:
        from audio_sheet_retrieval.config.exp_config import load_config
        from audio_sheet_retrieval.nn.module_loader import load_model_module
        from audio_sheet_retrieval.train.checkpoint import load_model_state

        model = load_model_module(args.model_file).build_model(load_config(args.config)).to(device)
        load_model_state(model, args.params)
        return model.eval(), file_digest(args.params)
    name = args.model or pretrained.DEFAULT_MODEL
    model, _, _ = pretrained.load_pretrained(name, device)
    return model, file_digest(pretrained.pretrained_params(name))


def main(argv: list[str] | None = None) -> int:
    """Run ``asr`` with ``argv`` (default: the command line); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "models":
        from audio_sheet_retrieval import pretrained

        for name in pretrained.available():
            meta = pretrained.pretrained_meta(name)
            print(f"{name}: {meta.get('summary', '')}")
        return 0
    _check_usage(args)
    from audio_sheet_retrieval import library

    model, params_id = _model(args)
    hop = max(1, int(round(args.hop_s * 20))) if args.command == "locate" else None
    # the recording first: a bad one fails before the library is built
    excerpts, centres_s = library.recording_excerpts(args.recording, model.spec_shape[1], hop)
    db = library.open_library(args.scores, model, params_id, args.cache, args.rebuild)
    if args.command == "identify":
        ranking = library.identify_excerpts(excerpts, db, model, k=args.k, vote_norm=args.vote_norm)
        print(library.format_ranking(ranking, args.top))
        return 0
    print(f"{'time s':>7}  {'page':>4}  {'system':>6}  {'x px':>6}  {'sim':>5}  piece")
    for loc in library.locate_excerpts(excerpts, centres_s, db, model):
        print(f"{loc.time_s:>7.2f}  {loc.page:>4}  {loc.system:>6}  {loc.column_px:>6.0f}  "
              f"{loc.similarity:>5.2f}  {loc.piece}")
    return 0


def entry() -> None:
    """Console entry point: a failed run exits 1 with one line, wrong options exit 2."""
    run_cli(main)


if __name__ == "__main__":
    entry()
