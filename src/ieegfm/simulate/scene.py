"""Ambient room audio of one recording block: speech, silence, room noise and non-speech sounds.

Generative model
----------------
A block is a sequence of segments laid end to end:

``speech``
    A conversation: 1-3 voices (of the room's :class:`~ieegfm.simulate.speech.Speaker`) saying 1-8 sentences in a
    row with 0.15-1.2 s pauses; each voice has its own level (distance to the microphone).
``silence``
    Nothing but the room background.
``noise``
    A louder steady noise (fan, air conditioning, running water): filtered noise with an optional mains hum.
``sounds``
    Non-speech events: monitor beeps, chirps, music-like harmonic notes, knocks, a door.

The next segment is speech with probability 0.8 while the speech time so far is below the target fraction and
0.05 above it, so the block's speech fraction tracks the target (about 0.55 by day, 0.12 at night). A low pink room
noise (about -50 dBFS) runs under everything.

The speech fraction of a block is the summed duration of its sentences' audio (including the short silences eSpeak
puts inside a sentence) divided by the block length.

References
----------
J. O. Smith, "Spectral Audio Signal Processing": the pink-noise filter (``b``/``a`` coefficients below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import butter, chirp, lfilter, sosfilt

from ieegfm.simulate.speech import Speaker, Voice

__all__ = ["DEFAULT_VOICES", "NARRATOR", "Segment", "BlockAudio", "pink_noise", "render_block", "render_narration"]

#: The voices of the simulated room (eSpeak NG names with variants, rate in wpm, pitch, pitch range).
DEFAULT_VOICES = [
    Voice("en-us", 165, 45, 55),
    Voice("en-us+f3", 175, 60, 60),
    Voice("en+m3", 155, 40, 45),
    Voice("en-gb-x-rp+f2", 170, 55, 50),
    Voice("en-us+m5", 185, 35, 40),
    Voice("en-029+f4", 160, 65, 65),
    Voice("en-gb-scotland+m2", 150, 50, 50),
    Voice("en-us-nyc+f1", 190, 58, 55),
]

#: The narrator of the task session (an audiobook): a voice, rate and pitch none of the room's speakers has.
NARRATOR = Voice("en-gb-x-gbcwmd+m6", 140, 38, 35)

_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])


@dataclass
class Segment:
    """One segment of the block timeline (times in seconds from the block start)."""

    kind: str
    onset: float
    duration: float
    detail: dict = field(default_factory=dict)


@dataclass
class BlockAudio:
    """The audio of one block.

    Attributes
    ----------
    audio : ndarray, shape (n_samples,), float32
        Waveform in [-1, 1].
    sfreq : float
        Sampling rate (Hz).
    words : list of (float, float, str)
        ``(onset, duration, word)`` in seconds from the block start.
    segments : list of Segment
        The timeline.
    speech_fraction : float
        Sentence audio time / block length.
    """

    audio: np.ndarray
    sfreq: float
    words: list[tuple[float, float, str]]
    segments: list[Segment]
    speech_fraction: float


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise of unit-order amplitude, shape ``(n_samples,)``, float32 (Smith's 3-pole filter)."""
    white = rng.standard_normal(n_samples + 2000)
    return (lfilter(_PINK_B, _PINK_A, white)[2000:] / 0.18).astype(np.float32)


def _envelope(n: int, sfreq: float, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    na, nr = min(n, max(1, int(attack * sfreq))), min(n, max(1, int(release * sfreq)))
    env[:na] *= np.linspace(0, 1, na)
    env[n - nr :] *= np.linspace(1, 0, nr)
    return env


def _beeps(duration: float, sfreq: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    n = int(duration * sfreq)
    out = np.zeros(n)
    freq, period, length = rng.uniform(700, 1300), rng.uniform(0.5, 1.5), rng.uniform(0.06, 0.16)
    t = np.arange(int(length * sfreq)) / sfreq
    beep = (np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t)) * _envelope(t.size, sfreq, 0.005, 0.01)
    for start in np.arange(rng.uniform(0, period), duration - length, period):
        i = int(start * sfreq)
        out[i : i + beep.size] += beep[: n - i]
    return out * rng.uniform(0.05, 0.2), {"sound": "beeps", "freq_hz": round(freq, 1), "period_s": round(period, 3)}


def _chirps(duration: float, sfreq: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    n = int(duration * sfreq)
    out = np.zeros(n)
    start = 0.0
    while start < duration - 0.3:
        length = min(rng.uniform(0.3, 1.5), duration - start)
        t = np.arange(int(length * sfreq)) / sfreq
        f0, f1 = rng.uniform(200, 1000), rng.uniform(1500, min(6000, 0.45 * sfreq))
        if rng.random() < 0.5:
            f0, f1 = f1, f0
        sweep = chirp(t, f0, length, f1, method="logarithmic") * _envelope(t.size, sfreq, 0.02, 0.05)
        i = int(start * sfreq)
        out[i : i + sweep.size] += sweep[: n - i]
        start += length + rng.uniform(0.1, 1.0)
    return out * rng.uniform(0.05, 0.2), {"sound": "chirps"}


def _music(duration: float, sfreq: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    n = int(duration * sfreq)
    out = np.zeros(n)
    root = rng.uniform(180, 330)
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])  # major pentatonic, semitones
    start = 0.0
    while start < duration - 0.15:
        length = min(rng.choice([0.2, 0.3, 0.4, 0.6]), duration - start)
        f = root * 2 ** (rng.choice(scale) / 12)
        t = np.arange(int(length * sfreq)) / sfreq
        note = sum((0.6**h) * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(5) if f * (h + 1) < 0.45 * sfreq)
        note = note * _envelope(t.size, sfreq, 0.01, 0.08) * np.exp(-t / (0.8 * length + 0.05))
        i = int(start * sfreq)
        out[i : i + note.size] += note[: n - i]
        start += length
    return out * rng.uniform(0.05, 0.2), {"sound": "music", "root_hz": round(root, 1)}


def _knocks(duration: float, sfreq: float, rng: np.random.Generator, door: bool = False) -> tuple[np.ndarray, dict]:
    n = int(duration * sfreq)
    out = np.zeros(n)
    sos = butter(2, 1500, fs=sfreq, output="sos")
    n_knocks = 1 if door else int(rng.integers(2, 6))
    start = rng.uniform(0, max(duration / 3, 0.01))
    for _ in range(n_knocks):
        if door:  # creak (band noise swell) then slam
            length = min(0.8, duration - start)
            t = np.arange(int(length * sfreq)) / sfreq
            creak = (
                sosfilt(butter(2, [400, 1200], btype="band", fs=sfreq, output="sos"), rng.standard_normal(t.size))
                * np.sin(np.pi * t / max(length, 1e-3))
                * 0.5
            )
            i = int(start * sfreq)
            out[i : i + creak.size] += creak[: n - i]
            start += length
        t = np.arange(int(0.25 * sfreq)) / sfreq
        thump = sosfilt(sos, rng.standard_normal(t.size)) * 3 + np.sin(2 * np.pi * rng.uniform(80, 200) * t)
        thump *= np.exp(-t / rng.uniform(0.015, 0.05))
        i = int(start * sfreq)
        if i < n:
            out[i : i + thump.size] += thump[: n - i]
        start += rng.uniform(0.15, 0.35)
    return out * rng.uniform(0.1, 0.4), {"sound": "door" if door else "knocks"}


_SOUNDS = {
    "beeps": _beeps,
    "chirps": _chirps,
    "music": _music,
    "knocks": _knocks,
    "door": lambda d, s, r: _knocks(d, s, r, door=True),
}


def _steady_noise(n: int, sfreq: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    lo, hi = rng.uniform(50, 300), rng.uniform(1500, min(7000, 0.45 * sfreq))
    noise = sosfilt(butter(2, [lo, hi], btype="band", fs=sfreq, output="sos"), rng.standard_normal(n))
    noise /= noise.std() + 1e-12
    hum = 0.0
    if rng.random() < 0.5:
        t = np.arange(n) / sfreq
        hum = 0.5 * np.sin(2 * np.pi * rng.choice([100.0, 120.0]) * t)
    level = rng.uniform(0.01, 0.05)
    env = _envelope(n, sfreq, 0.3, 0.3)
    return (noise + hum) * level * env, {"band_hz": [round(lo, 1), round(hi, 1)], "rms": round(level, 4)}


def render_block(
    duration: float,
    sfreq: float,
    rng: np.random.Generator,
    speaker: Speaker,
    sentences: list[str],
    speech_target: float,
    room_level: float = 0.003,
) -> BlockAudio:
    """Simulate the ambient audio of one block.

    Parameters
    ----------
    duration : float
        Block length (s).
    sfreq : float
        Audio sampling rate (Hz); must equal ``speaker.sfreq``.
    rng : numpy.random.Generator
        Source of all randomness of the block.
    speaker : Speaker
        Synthesises (and caches) the sentences.
    sentences : list of str
        Sentence pool.
    speech_target : float
        Target fraction of the block covered by speech (0-1).
    room_level : float
        RMS of the pink room background (full scale 1).

    Returns
    -------
    block : BlockAudio
        ``audio`` of shape ``(round(duration * sfreq),)``, word timings, timeline, speech fraction.
    """
    n = int(round(duration * sfreq))
    audio = (pink_noise(n, rng) * room_level).astype(np.float64)
    words: list[tuple[float, float, str]] = []
    segments: list[Segment] = []
    speech_time, t = 0.0, 0.0
    n_voices = len(speaker.voices)
    while t < duration - 0.05:
        below = speech_time < speech_target * max(t, 1.0)
        if rng.random() < (0.8 if below else 0.05):
            voices = rng.choice(n_voices, size=int(rng.integers(1, min(3, n_voices) + 1)), replace=False)
            gains = {int(v): float(rng.uniform(0.25, 0.7)) for v in voices}
            onset, cursor, said = t, t, []
            for _ in range(int(rng.integers(1, 9))):
                v = int(rng.choice(voices))
                k = int(rng.integers(len(sentences)))
                utt = speaker.say(sentences[k], v)
                if cursor + utt.duration > duration:
                    break
                i = int(round(cursor * sfreq))
                seg = utt.audio[: n - i]
                audio[i : i + seg.size] += gains[v] * seg
                words.extend((round(cursor + w0, 4), w1, w) for w0, w1, w in utt.words)
                said.append({"sentence": k, "voice": v})
                speech_time += utt.duration
                cursor += utt.duration + rng.uniform(0.15, 1.2)
            if not said:  # nothing fits before the block end: fill with silence
                segments.append(Segment("silence", t, duration - t))
                break
            end = min(cursor, duration)
            segments.append(
                Segment(
                    "speech",
                    onset,
                    end - onset,
                    {"utterances": said, "gains": {str(k): round(g, 3) for k, g in gains.items()}},
                )
            )
            t = end
            continue
        kind = rng.choice(["silence", "noise", "sounds"], p=[0.5, 0.2, 0.3])
        night = speech_target < 0.3
        length = float(min(rng.uniform(5, 90) if (night and kind == "silence") else rng.uniform(2, 15), duration - t))
        i0, i1 = int(round(t * sfreq)), min(n, int(round((t + length) * sfreq)))
        detail: dict = {}
        if kind == "noise":
            sig, detail = _steady_noise(i1 - i0, sfreq, rng)
            audio[i0:i1] += sig
        elif kind == "sounds":
            name = str(rng.choice(list(_SOUNDS)))
            sig, detail = _SOUNDS[name](length, sfreq, rng)
            audio[i0 : i0 + sig.size] += sig[: n - i0]
        segments.append(Segment(str(kind), round(t, 4), round(length, 4), detail))
        t += length
    np.clip(audio, -1.0, 1.0, out=audio)
    return BlockAudio(
        audio=audio.astype(np.float32),
        sfreq=float(sfreq),
        words=words,
        segments=segments,
        speech_fraction=float(speech_time / duration),
    )


def render_narration(
    duration: float,
    sfreq: float,
    rng: np.random.Generator,
    speaker: Speaker,
    sentences: list[str],
    first_sentence: int = 0,
    gain: float = 0.6,
    room_level: float = 0.0005,
) -> tuple[BlockAudio, list[tuple[float, float, str]], int]:
    """Simulate one block of the task session: continuous narrated speech, as when listening to an audiobook.

    Sentences of the pool are read in order from ``first_sentence`` (wrapping around) by ``speaker.voices[0]``
    with short pauses (0.08-0.25 s), over a quiet, clean room (no ambient sounds): at least 90 % speech. The block
    may end mid-sentence (the last event is cut at the block end); the next block starts with the next sentence.

    Parameters
    ----------
    duration : float
        Block length (s).
    sfreq : float
        Audio sampling rate (Hz); must equal ``speaker.sfreq``.
    rng : numpy.random.Generator
        Pauses and the room noise.
    speaker : Speaker
        Its first voice reads (e.g. :data:`NARRATOR`).
    sentences : list of str
        The text, one sentence per item.
    first_sentence : int
        Index of the first sentence read.
    gain : float
        Level of the narration (full scale 1).
    room_level : float
        RMS of the pink room background.

    Returns
    -------
    block : BlockAudio
    events : list of (float, float, str)
        One ``(onset, duration, text)`` per sentence read (s from the block start).
    next_sentence : int
        Index of the sentence the next block starts with.
    """
    n = int(round(duration * sfreq))
    audio = (pink_noise(n, rng) * room_level).astype(np.float64)
    words: list[tuple[float, float, str]] = []
    events: list[tuple[float, float, str]] = []
    segments: list[Segment] = []
    t, k, speech_time = float(rng.uniform(0.1, 0.3)), int(first_sentence), 0.0
    while t < duration - 0.05:
        text = sentences[k % len(sentences)]
        utt = speaker.say(text, 0)
        i = int(round(t * sfreq))
        seg = utt.audio[: n - i]  # the recording block may end mid-sentence, as the narration goes on
        audio[i : i + seg.size] += gain * seg
        length = seg.size / sfreq
        words.extend((round(t + w0, 4), w1, w) for w0, w1, w in utt.words if t + w0 + w1 <= duration)
        events.append((round(t, 4), round(length, 4), text))
        segments.append(Segment("speech", round(t, 4), round(length, 4), {"sentence": k % len(sentences)}))
        speech_time += length
        t += utt.duration + float(rng.uniform(0.08, 0.25))
        k += 1
    np.clip(audio, -1.0, 1.0, out=audio)
    block = BlockAudio(audio.astype(np.float32), float(sfreq), words, segments, float(speech_time / duration))
    return block, events, k
