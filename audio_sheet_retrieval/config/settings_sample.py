"""Sample settings: copy to ``settings.py`` to change the defaults.

``EXP_ROOT`` is where trained parameters and results go, ``DATA_ROOT_MSMD``
the MSMD-layout data root (a real MSMD download or what ``build_dataset.py``
writes). The environment variables of the same names override both.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

EXP_ROOT = os.environ.get("EXP_ROOT", str(REPO_ROOT / "experiments"))
DATA_ROOT_MSMD = os.environ.get("DATA_ROOT_MSMD", str(REPO_ROOT / "data" / "msmd"))
