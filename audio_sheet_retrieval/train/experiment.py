"""Where an experiment's files live, and which device it runs on.

``EXP_ROOT/<model name>/params_<tag>.pt`` with ``tag = <split stem>_<config stem>``,
as in the original; ``refine_cca.py`` writes ``EXP_ROOT/<model name>_est_UV/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from audio_sheet_retrieval.errors import UsageError


@dataclass(frozen=True)
class ExperimentPaths:
    """Files of one (model, split, config) experiment."""

    folder: Path
    tag: str
    params_file: Path | None = None
    """Parameters to load instead of ``folder/params_<tag>.pt`` (a shipped model)."""

    @classmethod
    def create(cls, exp_root: str | Path, model_name: str, split_file: str | Path,
               config_file: str | Path, estimate_uv: bool = False) -> ExperimentPaths:
        name = f"{model_name}_est_UV" if estimate_uv else model_name
        return cls(Path(exp_root) / name, f"{Path(split_file).stem}_{Path(config_file).stem}")

    @property
    def params(self) -> Path:
        """Best parameters (weights only; what evaluation loads)."""
        return self.params_file or self.folder / f"params_{self.tag}.pt"

    @property
    def best_state(self) -> Path:
        """Best parameters with their optimizer state (reloaded by refinement steps)."""
        return self.folder / f"best_state_{self.tag}.pt"

    @property
    def last_state(self) -> Path:
        """State after the last finished epoch (what ``--resume`` continues)."""
        return self.folder / f"last_state_{self.tag}.pt"

    @property
    def results(self) -> Path:
        """Per-epoch curves (YAML)."""
        return self.folder / f"results_{self.tag}.yaml"

    @property
    def curves_png(self) -> Path:
        return self.folder / f"curves_{self.tag}.png"

    def estimated_uv(self) -> ExperimentPaths:
        """The refined-CCA twin of this experiment (``<model>_est_UV``)."""
        return ExperimentPaths(self.folder.with_name(f"{self.folder.name}_est_UV"), self.tag)


_CUDA = re.compile(r"^(?:cuda|gpu):?(\d*)$")


def parse_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda0``, ``cuda:1`` or ``gpu0`` (Theano style) -> torch.device.

    Raises
    ------
    UsageError
        For an unknown name, or CUDA asked for where there is none.
    """
    name = name.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    m = _CUDA.match(name)
    if m is None:
        raise UsageError(f"--device {name}: unknown device; use cpu, cuda0, cuda:1, ...")
    index = int(m.group(1) or 0)
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device(f"cuda:{index}")
