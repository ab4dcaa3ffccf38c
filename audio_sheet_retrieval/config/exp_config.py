"""Experiment configurations (``exp_configs/*.yaml``): loading and validation.

Keys, as in the original system: ``SHEET_CONTEXT`` (snippet width, px),
``STAFF_HEIGHT`` (snippet height, px), ``SPEC_CONTEXT`` (excerpt length,
frames), ``SPEC_BINS`` (92), ``FPS`` (20), ``AUGMENT`` (``system_translation``
px, ``sheet_scaling`` [lo, hi], ``onset_translation`` frames, ``synths``,
``tempo_range`` [lo, hi]), ``TEST_SYNTH``, ``TEST_TEMPO``. Optional:
``VALID_SYNTH`` (default: the first training synth) and ``VALID_TEMPO`` (1.0).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from audio_sheet_retrieval.errors import AsrError

REQUIRED = ("SHEET_CONTEXT", "STAFF_HEIGHT", "SPEC_CONTEXT", "SPEC_BINS", "FPS", "AUGMENT",
            "TEST_SYNTH", "TEST_TEMPO")
AUGMENT_KEYS = ("system_translation", "sheet_scaling", "onset_translation", "synths",
                "tempo_range")


def validate_config(config: dict, source: str = "config") -> dict:
    """Check an experiment configuration and fill optional keys.

    Raises
    ------
    AsrError
        Naming ``source`` and the missing or wrong key.
    """
    if not isinstance(config, dict):
        raise AsrError(f"{source}: not a YAML mapping of configuration keys")
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise AsrError(f"{source}: missing key(s) {', '.join(missing)}; "
                       "see exp_configs/full_aug.yaml for a complete configuration")
    aug = config["AUGMENT"]
    if not isinstance(aug, dict) or any(k not in aug for k in AUGMENT_KEYS):
        raise AsrError(f"{source}: AUGMENT needs the keys {', '.join(AUGMENT_KEYS)}")
    if not aug["synths"]:
        raise AsrError(f"{source}: AUGMENT.synths is empty; name at least one training synth")
    lo, hi = aug["sheet_scaling"]
    tlo, thi = aug["tempo_range"]
    if not (0 < lo <= hi) or not (0 < tlo <= thi):
        raise AsrError(f"{source}: sheet_scaling and tempo_range must be [lo, hi] with 0 < lo <= hi")
    for key in ("SHEET_CONTEXT", "STAFF_HEIGHT", "SPEC_CONTEXT", "SPEC_BINS", "FPS"):
        if not isinstance(config[key], int) or config[key] <= 0:
            raise AsrError(f"{source}: {key} must be a positive integer, got {config[key]!r}")
    out = dict(config)
    out.setdefault("VALID_SYNTH", aug["synths"][0])
    out.setdefault("VALID_TEMPO", 1.0)
    return out


def load_config(path: str | Path) -> dict:
    """Load and validate ``exp_configs/<name>.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: config file not found; pick one of exp_configs/*.yaml")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise AsrError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate_config(config, str(path))
