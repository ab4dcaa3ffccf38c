"""Helpers shared by the benchmarks: timing medians and atomic JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from audio_sheet_retrieval.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict:
    """What the figures were measured on."""
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def write_json(name: str, data: dict, out: Path | None = None) -> Path:
    """Write ``bench/results/<name>.json`` atomically and return its path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    return write_text_atomic(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2),
                             path)
