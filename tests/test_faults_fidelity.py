"""Fidelity faults: importing the library changes nothing in the user's process.

A notebook that imports ``audio_sheet_retrieval`` must keep its inline
matplotlib backend (the tutorials used to show none of their figures because
plotting modules called ``matplotlib.use("Agg")`` at import), and a program
that imports it must keep its environment, warning filters, logging set-up and
thread count. Each check runs in a fresh interpreter: it first imports every
third-party module the package's source imports (their own import-time
settings, such as scipy's warning filters, are not the package's doing), then
every module of the package, and compares the process before with after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import ast, importlib, json, logging, os, pkgutil, sys, warnings
from pathlib import Path

import matplotlib
import numpy as np
import torch


def third_party_imports(package: Path) -> list[str]:
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] != "audio_sheet_retrieval")


for name in third_party_imports(Path(sys.argv[1])):
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # an optional dependency; if the package needs it, its import fails below


def state():
    return {
        "backend": matplotlib.get_backend(),
        "rc_backend": dict.__getitem__(matplotlib.rcParams, "backend"),
        "environ": dict(os.environ),
        "warning_filters": [repr(f) for f in warnings.filters],
        "root_handlers": [repr(h) for h in logging.getLogger().handlers],
        "root_level": logging.getLogger().level,
        "torch_threads": torch.get_num_threads(),
        "numpy_err": np.geterr(),
        "cwd": os.getcwd(),
    }


before = state()
import audio_sheet_retrieval  # noqa: E402

modules = [m.name for m in pkgutil.walk_packages(audio_sheet_retrieval.__path__,
                                                 "audio_sheet_retrieval.")]
for name in modules:
    importlib.import_module(name)
after = state()
print(json.dumps({"modules": modules, "before": before, "after": after}))
"""


def inline_backend() -> str:
    """A backend a notebook would use: inline where installed, else svg (neither is Agg)."""
    if importlib.util.find_spec("matplotlib_inline") is not None:
        return "module://matplotlib_inline.backend_inline"
    return "svg"


def run_probe(backend: str) -> dict:
    env = {**os.environ, "MPLBACKEND": backend, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "audio_sheet_retrieval")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probe() -> dict:
    return run_probe(inline_backend())


def test_every_module_was_imported(probe):
    modules = set(probe["modules"])
    # the plotting modules that used to switch the backend are among them
    assert {"audio_sheet_retrieval.train.curves", "audio_sheet_retrieval.data.plots",
            "audio_sheet_retrieval.eval.report", "audio_sheet_retrieval.eval.summary"} <= modules
    assert len(modules) >= 30


def test_importing_the_package_keeps_the_matplotlib_backend(probe):
    before, after = probe["before"], probe["after"]
    assert before["backend"] == inline_backend()
    assert after["backend"] == before["backend"]
    assert after["rc_backend"] == before["rc_backend"]


def test_importing_the_package_keeps_the_environment(probe):
    before, after = probe["before"]["environ"], probe["after"]["environ"]
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"importing the package changed os.environ: {sorted(changed)}"


@pytest.mark.parametrize("key", ["warning_filters", "root_handlers", "root_level",
                                 "torch_threads", "numpy_err", "cwd"])
def test_importing_the_package_keeps_process_settings(probe, key):
    assert probe["after"][key] == probe["before"][key]


def test_plots_are_drawn_without_pyplot_and_keep_the_backend(tmp_path):
    """Drawing a figure (not only importing) leaves a notebook's backend alone too."""
    script = r"""
import json, sys
import matplotlib
import numpy as np
before = matplotlib.get_backend()
from audio_sheet_retrieval.eval.summary import plot_rank_histogram
from audio_sheet_retrieval.train.curves import plot_curves
out = sys.argv[1]
plot_rank_histogram(np.array([1, 2, 2, 5, 40]), out + "/ranks.png", title="t")
plot_curves([{"epoch": 1, "train_loss": 1.0, "valid_loss": 1.1, "valid_mrr": 0.2},
             {"epoch": 2, "train_loss": 0.8, "valid_loss": 0.9, "valid_mrr": 0.3}], out + "/curves.png")
import matplotlib.pyplot as plt
print(json.dumps({"before": before, "after": matplotlib.get_backend(),
                  "open_figures": len(plt.get_fignums())}))
"""
    env = {**os.environ, "MPLBACKEND": inline_backend(), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"before": inline_backend(), "after": inline_backend(), "open_figures": 0}
    for name in ("ranks.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_plot_of_a_real_build_is_drawn_without_touching_pyplot(built_root, test_config, tmp_path):
    """The data plots and the report's figures draw on Figure objects: PNGs written, no pyplot figure left."""
    import matplotlib
    import torch
    import yaml

    from audio_sheet_retrieval.data.mutopia import load_pools
    from audio_sheet_retrieval.data.plots import plot_piece
    from audio_sheet_retrieval.eval.report import plot_attention, plot_retrievals
    from audio_sheet_retrieval.nn.module_loader import load_model_module

    backend = matplotlib.get_backend()
    pieces = sorted(p.name for p in built_root.iterdir() if (p / "meta.yml").is_file())
    made = plot_piece(built_root, pieces[0], tmp_path)
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"train": pieces, "valid": pieces[:1], "test": pieces}))
    pool = load_pools(built_root, split, test_config, kinds=("test",), progress=False)["test"]
    torch.manual_seed(0)
    model = load_model_module(REPO / "models" / "demo.py").build_model(test_config)
    made += [plot_attention(model, pool, tmp_path / "attention.png"),
             plot_retrievals(model, pool, tmp_path / "retrievals.png", n_candidates=50)]
    for path in made:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    assert matplotlib.get_backend() == backend
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
