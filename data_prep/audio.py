"""MIDI to audio, offline: a General MIDI soundfont played by TinySoundFont, written as a 16-bit WAV.

The synthesiser is the `tinysoundfont` wheel (TinySoundFont compiled into a Python extension: no system
library, no server) and the soundfont is `TimGM6mb.sf2`, the 6 MB General MIDI set that the `pretty-midi`
wheel ships; both install with pip alone, so every machine renders the same sound. FluidSynth sounds
richer but needs a system library and a larger soundfont that no wheel carries.
"""
from __future__ import annotations

import importlib.util
import wave
from pathlib import Path

import numpy as np

from .files import writing
from .midi import PERCUSSION_CHANNEL, open_midi

SAMPLE_RATE = 44_100
RELEASE_SECONDS = 1.0  # kept after the last event, so the last notes' release rings out
PEAK = 10 ** (-1 / 20)  # the loudest sample at -1 dBFS


class AudioError(ValueError):
    """Audio that cannot be rendered here."""


def soundfont_path() -> Path:
    spec = importlib.util.find_spec("pretty_midi")
    path = Path(spec.origin).parent / "TimGM6mb.sf2" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise AudioError("no soundfont: audio needs the pretty-midi package, which ships TimGM6mb.sf2 "
                         "(pip install pretty-midi; `make install` does it)")
    return path


def render_midi(path, program: int | None = 0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A MIDI file as stereo float32 samples (n, 2) at ``sample_rate`` (44.1 kHz), normalised to a -1 dBFS
    peak (silence stays silent). Every melodic channel plays General MIDI ``program`` (0: acoustic grand piano), or the file's
    own programs with ``program`` None; channel 10 plays drums."""
    try:
        import tinysoundfont
    except ImportError:
        raise AudioError("audio needs the tinysoundfont package: pip install --no-deps tinysoundfont "
                         "(`make install` does it; its pyaudio dependency is for live playback only)") from None
    midi = open_midi(path, timed=True)
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    font = synth.sfload(str(soundfont_path()))
    for channel in range(16):
        drums = channel == PERCUSSION_CHANNEL
        synth.program_select(channel, font, 128 if drums else 0, 0 if drums else (program or 0), is_drums=drums)
    chunks, now, rendered = [], 0.0, 0

    def advance_to(seconds):
        nonlocal rendered
        target = int(round(seconds * sample_rate))
        if target > rendered:
            chunks.append(np.frombuffer(synth.generate(target - rendered), dtype=np.float32).copy())
            rendered = target

    for message in midi:  # times in seconds, tempo map applied
        now += message.time
        advance_to(now)
        if message.type == "note_on" and message.velocity > 0:
            synth.noteon(message.channel, message.note, message.velocity)
        elif message.type in ("note_off", "note_on"):
            synth.noteoff(message.channel, message.note)
        elif message.type == "program_change" and program is None and message.channel != PERCUSSION_CHANNEL:
            synth.program_select(message.channel, font, 0, message.program)
    advance_to(now + RELEASE_SECONDS)
    audio = np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((0, 2), np.float32)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return audio * (PEAK / peak) if peak > 1e-6 else np.zeros_like(audio)


def write_wav(audio: np.ndarray, path, sample_rate: int = SAMPLE_RATE, mono: bool = False):
    """Stereo float samples in [-1, 1] as a 16-bit PCM WAV (``mono``: the two channels averaged)."""
    if mono:
        audio = audio.mean(1, keepdims=True)
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype("<i2")
    # the file is opened here, not by wave: a Wave_write whose file failed to open complains again when
    # collected ("Exception ignored in Wave_write.__del__")
    with writing(path), open(path, "wb") as file, wave.open(file, "wb") as f:
        f.setnchannels(audio.shape[1])
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
