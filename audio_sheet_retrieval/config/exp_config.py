"""Experiment configurations (``exp_configs/*.yaml``): loading and validation.

Keys, as in the original system: ``SHEET_CONTEXT`` (snippet width, px),
``STAFF_HEIGHT`` (snippet height, px), ``SPEC_CONTEXT`` (excerpt length,
frames), ``SPEC_BINS`` (92), ``FPS`` (20), ``AUGMENT`` (``system_translation``
px, ``sheet_scaling`` [lo, hi], ``onset_translation`` frames, ``synths``,
``tempo_range`` [lo, hi]), ``TEST_SYNTH``, ``TEST_TEMPO``. Optional:
``VALID_SYNTH`` (default: the first training synth) and ``VALID_TEMPO`` (1.0).

Optional ``AUGMENT`` keys of the realism augmentation (all off when absent,
so a configuration without them trains on exactly the pairs it always did;
see :mod:`audio_sheet_retrieval.data.pools`):

``tempo_stretch: [lo, hi]``
    Continuous tempo augmentation: each training excerpt is resampled along
    time as if played ``r`` times as fast, ``r`` log-uniform in ``[lo, hi]``
    (e.g. ``[0.5, 2.0]``), on top of the rendered tempi of ``tempo_range``.
``scan: {p: 0.5, <ScanOptions fields>}``
    Scan-like degradation of a sheet snippet with probability ``p``; the
    other keys are fields of
    :class:`~audio_sheet_retrieval.data.page_quality.ScanOptions` (ranges as
    ``[lo, hi]``; unnamed fields keep its defaults) except ``scale``:
    staff-height scaling is ``sheet_scaling``, applied before the crop.
``audio_effects: {p_reverb: 0.3, p_noise: 0.3, p_eq: 0.3, p_compress: 0.2, ...}``
    Spectrogram-domain reverb, noise, equalizer and compression on each
    training excerpt, each with its probability; the keys are fields of
    :class:`~audio_sheet_retrieval.audio.augment.AudioAugmentOptions`
    (unnamed fields keep its defaults).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml

from audio_sheet_retrieval.audio.augment import AudioAugmentOptions
from audio_sheet_retrieval.data.page_quality import ScanOptions
from audio_sheet_retrieval.errors import AsrError

REQUIRED = ("SHEET_CONTEXT", "STAFF_HEIGHT", "SPEC_CONTEXT", "SPEC_BINS", "FPS", "AUGMENT",
            "TEST_SYNTH", "TEST_TEMPO")
AUGMENT_KEYS = ("system_translation", "sheet_scaling", "onset_translation", "synths",
                "tempo_range")
OPTIONAL_AUGMENT_KEYS = ("tempo_stretch", "scan", "audio_effects")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_options(section: dict, name: str, cls, source: str, extra: tuple[str, ...] = (),
                   refused: dict[str, str] | None = None) -> None:
    """Check a mapping of fields of the option dataclass ``cls`` (plus ``extra`` keys)."""
    if not isinstance(section, dict):
        raise AsrError(f"{source}: AUGMENT.{name} must be a mapping of {cls.__name__} fields")
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in section.items():
        if key in (refused or {}):
            raise AsrError(f"{source}: AUGMENT.{name}.{key}: {refused[key]}")
        if key not in fields and key not in extra:
            raise AsrError(f"{source}: AUGMENT.{name}.{key} is not an option; use "
                           f"{', '.join(sorted((fields - set(refused or ())) | set(extra)))}")
        ok = (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))) \
            or _is_number(value)
        if not ok:
            raise AsrError(f"{source}: AUGMENT.{name}.{key} must be a number or [lo, hi], got {value!r}")
        if key.startswith("p") and (key == "p" or key.startswith("p_")) and not 0 <= value <= 1:
            raise AsrError(f"{source}: AUGMENT.{name}.{key} is a probability within [0, 1], got {value!r}")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items() if k not in extra}
    try:
        cls(**options)
    except (TypeError, ValueError) as err:
        raise AsrError(f"{source}: AUGMENT.{name}: {err}") from None


def _check_realism(aug: dict, source: str) -> None:
    """Validate the optional AUGMENT keys ``tempo_stretch``, ``scan`` and ``audio_effects``."""
    if "tempo_stretch" in aug:
        value = aug["tempo_stretch"]
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))
                and 0 < value[0] <= value[1]):
            raise AsrError(f"{source}: AUGMENT.tempo_stretch must be [lo, hi] with 0 < lo <= hi "
                           f"(tempo ratios, e.g. [0.5, 2.0]), got {value!r}")
    if "scan" in aug:
        if not isinstance(aug["scan"], dict) or "p" not in aug["scan"]:
            raise AsrError(f"{source}: AUGMENT.scan needs p, the probability that a snippet is "
                           "degraded (e.g. scan: {p: 0.5})")
        _check_options(aug["scan"], "scan", ScanOptions, source, extra=("p",),
                       refused={"scale": "staff-height scaling is AUGMENT.sheet_scaling "
                                         "(applied before the crop); remove it here"})
    if "audio_effects" in aug:
        _check_options(aug["audio_effects"], "audio_effects", AudioAugmentOptions, source)


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
    unknown = sorted(set(aug) - set(AUGMENT_KEYS) - set(OPTIONAL_AUGMENT_KEYS))
    if unknown:
        raise AsrError(f"{source}: AUGMENT.{unknown[0]} is not a key; use "
                       f"{', '.join(AUGMENT_KEYS + OPTIONAL_AUGMENT_KEYS)}")
    _check_realism(aug, source)
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
