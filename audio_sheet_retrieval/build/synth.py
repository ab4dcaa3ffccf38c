"""Synthesizers: note events -> mono audio, with FluidSynth soundfonts or TiMidity.

Each synth has a name that appears in MSMD performance folder names
(``<piece>_tempo-1000_<synth>``). A synth whose soundfont or patch set is
missing or invalid raises :class:`SynthError`; nothing falls back silently to
another instrument (the fluidsynth program would, and exit 0).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_sheet_retrieval.audio.spectrogram import SR
from audio_sheet_retrieval.build.midi import write_midi

SF2 = Path("/usr/share/sounds/sf2")
SF3 = Path("/usr/share/sounds/sf3")
TAIL_S = 1.0
"""Release tail rendered after the last note-off, in seconds."""


class SynthError(RuntimeError):
    """A synth cannot be used: unknown name, missing or invalid soundfont."""


@dataclass(frozen=True)
class SynthSpec:
    """One instrument: a soundfont preset (FluidSynth) or a TiMidity patch set.

    Attributes
    ----------
    name : str
        Name used in performance folders.
    backend : str
        ``"fluidsynth"`` or ``"timidity"``.
    path : Path
        Soundfont (``.sf2``/``.sf3``) or TiMidity config file.
    bank, preset : int
        Soundfont bank and preset (General MIDI program, 0-based).
    acoustic : bool
        An acoustic piano (False for electric pianos).
    package : str
        Debian package that provides ``path``.
    """

    name: str
    backend: str
    path: Path
    bank: int = 0
    preset: int = 0
    acoustic: bool = True
    package: str = ""


SYNTHS: dict[str, SynthSpec] = {s.name: s for s in [
    SynthSpec("FluidR3Grand", "fluidsynth", SF2 / "FluidR3_GM.sf2", package="fluid-soundfont-gm"),
    SynthSpec("TimGM6mbPiano", "fluidsynth", SF2 / "TimGM6mb.sf2", package="timgm6mb-soundfont"),
    SynthSpec("GMbankPiano", "fluidsynth", SF2 / "sf_GMbank.sf2", package="csound-soundfont"),
    SynthSpec("MuseScoreGrand", "fluidsynth", SF3 / "MuseScore_General_Full.sf3",
              package="musescore-general-soundfont"),
    SynthSpec("FreepatsGrand", "timidity", Path("/etc/timidity/freepats.cfg"), package="freepats"),
    # FluidR3's preset 4 (Rhodes) has a tremolo that swells after each onset; 5 does not
    SynthSpec("ElectricPiano", "fluidsynth", SF2 / "FluidR3_GM.sf2", preset=5, acoustic=False,
              package="fluid-soundfont-gm"),
    SynthSpec("TimGM6mbEPiano", "fluidsynth", SF2 / "TimGM6mb.sf2", preset=4, acoustic=False,
              package="timgm6mb-soundfont"),
]}
DEFAULT_SYNTHS = ("FluidR3Grand", "TimGM6mbPiano", "GMbankPiano", "MuseScoreGrand",
                  "FreepatsGrand", "ElectricPiano")


def get_synth(name: str) -> SynthSpec:
    """The synth called ``name``; :class:`SynthError` naming the known ones otherwise."""
    if name not in SYNTHS:
        raise SynthError(f"unknown synth {name!r}; choose from {', '.join(SYNTHS)}")
    return SYNTHS[name]


def check_synth(spec: SynthSpec) -> None:
    """Raise :class:`SynthError` unless the synth's files and programs are there."""
    if not spec.path.is_file():
        raise SynthError(f"{spec.path}: missing for synth {spec.name}; "
                         f"install it with: apt-get install {spec.package}")
    if spec.backend == "timidity" and shutil.which("timidity") is None:
        raise SynthError(f"timidity not found for synth {spec.name}; "
                         "install it with: apt-get install timidity freepats")


_LOADED: dict[tuple[str, int, int], object] = {}
_LOADED_SFID: dict[tuple[str, int, int], int] = {}
_RENDERED: dict[tuple[str, int, int], int] = {}  # samples each synth produced so far
_BLOCK = 64  # FluidSynth renders in blocks of 64 samples and applies events at block starts


def _fluidsynth(spec: SynthSpec):
    """A FluidSynth instance with the synth's preset on channel 0 (cached per process)."""
    key = (str(spec.path), spec.bank, spec.preset)
    if key not in _LOADED:
        import fluidsynth  # needs libfluidsynth; imported only when a synth renders

        fs = fluidsynth.Synth(samplerate=float(SR), gain=0.5)
        fs.setting("synth.reverb.active", 0)
        fs.setting("synth.chorus.active", 0)
        sfid = fs.sfload(str(spec.path))
        if sfid < 0:
            raise SynthError(f"{spec.path}: not a valid soundfont (synth {spec.name}); "
                             f"reinstall it with: apt-get install --reinstall {spec.package}")
        if fs.program_select(0, sfid, spec.bank, spec.preset) < 0:
            raise SynthError(f"{spec.path}: has no preset {spec.bank}:{spec.preset} "
                             f"(synth {spec.name})")
        # warm up: the very first notes of a fresh synth sound slightly different
        # from later ones; play one so that every piece's render is alike
        fs.noteon(0, 60, 80)
        fs.get_samples(SR // 4)
        fs.noteoff(0, 60)
        fs.get_samples(SR // 4)
        _LOADED[key] = fs
        _LOADED_SFID[key] = sfid
        _RENDERED[key] = 2 * (SR // 4)
    return _LOADED[key]


def _render_fluidsynth(spec: SynthSpec, note_events: np.ndarray) -> np.ndarray:
    fs = _fluidsynth(spec)
    key = (str(spec.path), spec.bank, spec.preset)

    def samples(n: int):
        _RENDERED[key] = _RENDERED.get(key, 0) + n
        return fs.get_samples(n)

    # The synth is reused across pieces (loading a soundfont takes seconds). So that a
    # render never depends on the previous one: silence its release tails at once (all
    # sound off; all notes off would let them ring on), reset, and start on a block
    # boundary (events take effect at the start of FluidSynth's next 64-sample block).
    for chan in range(16):
        fs.cc(chan, 120, 0)
    fs.system_reset()
    samples(1024 + (-_RENDERED.get(key, 0)) % _BLOCK)
    fs.program_select(0, _LOADED_SFID[key], spec.bank, spec.preset)
    events = sorted([(on, 1, int(p)) for on, p, _ in note_events[:, :3]]
                    + [(on + max(d, 0.01), 0, int(p)) for on, p, d in note_events[:, :3]])
    chunks, now = [], 0
    for t, is_on, pitch in events:
        sample = int(round(t * SR))
        if sample > now:
            chunks.append(samples(sample - now))
            now = sample
        if is_on:
            fs.noteon(0, pitch, 80)
        else:
            fs.noteoff(0, pitch)
    chunks.append(samples(int(TAIL_S * SR)))
    stereo = np.concatenate(chunks).astype(np.float32).reshape(-1, 2)
    return stereo.mean(axis=1) / 32768.0


def _render_timidity(spec: SynthSpec, note_events: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(write_midi(note_events, program=spec.preset, bank=spec.bank))
        proc = subprocess.run(["timidity", "-c", str(spec.path), "-Ow", "-s", str(SR),
                               "-o", str(wav), str(mid)], capture_output=True, text=True)
        if proc.returncode != 0 or not wav.is_file():
            raise SynthError(f"timidity failed for synth {spec.name}: "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != SR:
        raise SynthError(f"timidity wrote {sr} Hz instead of {SR} Hz for synth {spec.name}")
    return y.mean(axis=1)


def render(synth: str, note_events: np.ndarray) -> np.ndarray:
    """Play note events on a synth.

    Parameters
    ----------
    synth : str
        A name from :data:`SYNTHS`.
    note_events : np.ndarray, shape (N, >=3)
        Onset (s), pitch, duration (s), ...

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
        Mono audio at 22,050 Hz, one second of release tail after the last note.

    Raises
    ------
    SynthError
        Unknown synth, missing or invalid soundfont, or silent output (which
        is what an unusable instrument sounds like).
    """
    spec = get_synth(synth)
    check_synth(spec)
    if spec.backend == "fluidsynth":
        y = _render_fluidsynth(spec, note_events)
    else:
        y = _render_timidity(spec, note_events)
    if len(note_events) and float(np.sqrt(np.mean(y ** 2))) < 1e-4:
        raise SynthError(f"synth {spec.name} rendered silence from {spec.path}; "
                         f"check the soundfont (apt-get install --reinstall {spec.package})")
    return y.astype(np.float32)
