#!/usr/bin/env python
"""How faithfully the builder reduces four-part scores to piano: notes, duration, measures.

For each piece the score goes through the builder's reader and reduction
(``load_musicxml``) and verovio plays it as MIDI (no pages, no synthesis), or
with ``--engraver lilypond`` the builder's LilyPond engraver lays it out and
plays it (musicxml2ly, LilyPond; pages, no synthesis).
The MIDI's notes, end time and measures are compared with what the original
score says (:func:`audio_sheet_retrieval.build.checks.summarize_source`).
A checkout without the checks module (an older one) records the built figures
only; ``--baseline`` compares such a run with the expectations of this one.

Usage::

    OMP_NUM_THREADS=1 python bench/reduction_fidelity.py --out after.json [--baseline before.json]
        [--engraver lilypond] [--pieces bach/bwv259 ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_sheet_retrieval.build.sources import (  # noqa: E402
    default_specs,
    load_musicxml,
    quartet_specs,
    resolve,
)


def default_pieces(n_chorales: int = 20) -> list[str]:
    """``n_chorales`` evenly spaced Bach chorales and every quartet movement."""
    chorales = [s for s in default_specs() if s.startswith("bach/") and s != "bach/bwv846"]
    step = max(1, len(chorales) // n_chorales)
    return chorales[::step][:n_chorales] + quartet_specs()


def built(spec: str, engraver: str = "verovio", full: bool = False) -> dict:
    """Notes, end (s) and measures of the engraver's MIDI of the builder's MusicXML.

    With ``full`` (always for LilyPond) the piece is engraved as the builder
    does, and the builder's own check is run on it where the checkout has it.
    """
    import verovio

    from audio_sheet_retrieval.build.engrave_verovio import VEROVIO_OPTIONS
    from audio_sheet_retrieval.build.midi import read_note_events

    source = resolve([spec])[0]
    if full or engraver == "lilypond":
        from audio_sheet_retrieval.build.pipeline import engrave_source

        engraved = engrave_source(source, engraver)
        events = engraved.note_events
        row = {"notes": len(events), "end_s": float((events[:, 0] + events[:, 2]).max()),
               "measures": getattr(engraved, "measures", None)}
        try:
            from audio_sheet_retrieval.build.checks import check_engraving
        except ImportError:
            return row
        try:
            check_engraving(source, engraved)
            row["check"] = "ok"
        except ValueError as err:
            row["check"] = str(err)
        return row
    xml = load_musicxml(source)
    verovio.enableLog(verovio.LOG_ERROR)
    tk = verovio.toolkit()
    tk.setOptions(VEROVIO_OPTIONS)
    tk.loadData(xml)
    events = read_note_events(base64.b64decode(tk.renderToMIDI()))
    end = float((events[:, 0] + events[:, 2]).max()) if len(events) else 0.0
    return {"notes": len(events), "end_s": end,
            "measures": len(re.findall(r"<measure\b", tk.getMEI()))}


def expected(spec: str) -> dict | None:
    try:
        from audio_sheet_retrieval.build.checks import summarize_source
    except ImportError:
        return None
    summary = summarize_source(resolve([spec])[0])
    return {"notes": summary.notes, "end_s": summary.end_s, "measures": summary.measures,
            "clashes": summary.clashes, "padding_s": summary.padding_s,
            "tremolo_notes": summary.tremolo_notes}


def _alarm(signum, frame):
    raise TimeoutError("timed out")


def measure(pieces: list[str], timeout_s: int, engraver: str = "verovio",
            full: bool = False) -> dict:
    signal.signal(signal.SIGALRM, _alarm)
    rows = {}
    for spec in pieces:
        t = time.perf_counter()
        row: dict = {}
        try:
            signal.alarm(timeout_s)
            row["expected"] = expected(spec)
            row["built"] = built(spec, engraver, full)
        except Exception as err:  # a failing piece is a result too
            row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        finally:
            signal.alarm(0)
        row["seconds"] = round(time.perf_counter() - t, 1)
        rows[spec] = row
        print(spec, json.dumps(row), flush=True)
    return rows


def agreement(rows: dict, expectations: dict) -> dict:
    """Per piece relative note difference and duration difference; medians and exact counts."""
    notes, ends, measures, kept, failed = [], [], [], [], 0
    for spec, exp in expectations.items():
        got = rows.get(spec, {}).get("built")
        if exp is None:
            continue
        if got is None:
            failed += 1
            continue
        kept.append(exp)
        notes.append((got["notes"] - exp["notes"]) / exp["notes"])
        ends.append(got["end_s"] - exp["end_s"])
        if got["measures"] is not None:
            measures.append(got["measures"] == exp["measures"])
    return {
        "pieces": len(notes), "failed": failed,
        "notes_exact": sum(abs(d) < 1e-12 for d in notes),
        "notes_within_1pct": sum(abs(d) <= 0.01 for d in notes),
        "notes_rel_diff_median": statistics.median(notes) if notes else None,
        "notes_rel_diff_worst": min(notes, key=lambda d: -abs(d)) if notes else None,
        "end_diff_s_median": statistics.median(ends) if ends else None,
        "end_within_1s": sum(abs(d) <= 1.0 for d in ends),
        "end_within_3pct": sum(abs(d) <= 0.03 * exp["end_s"] for d, exp in zip(ends, kept)),
        "measures_equal": sum(measures),
        "check_passed": sum(rows.get(s, {}).get("built", {}).get("check") == "ok" for s in expectations),
        "check_failed": sorted(s for s in expectations
                               if rows.get(s, {}).get("built", {}).get("check", "ok") != "ok"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", nargs="+", help="corpus names (default: 20 chorales + quartets)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per piece")
    p.add_argument("--out", type=Path, required=True, help="JSON file of the results")
    p.add_argument("--baseline", type=Path, help="an earlier --out to compare against")
    p.add_argument("--engraver", choices=("verovio", "lilypond"), default="verovio")
    p.add_argument("--full", action="store_true",
                   help="engrave pages as the builder does and run its check (slower)")
    args = p.parse_args()
    rows = measure(args.pieces or default_pieces(), args.timeout, args.engraver, args.full)
    expectations = {s: r.get("expected") for s, r in rows.items()}
    result = {"rows": rows, "agreement": agreement(rows, expectations)}
    if args.baseline:
        base = json.loads(args.baseline.read_text())["rows"]
        result["baseline_agreement"] = agreement(base, expectations)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
