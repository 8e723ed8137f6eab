"""Text to speech with word timings: eSpeak NG through ctypes.

The ``espeakng_loader`` wheel ships ``libespeak-ng`` and its voice data, so synthesis works offline. The library is
driven in synchronous mode (``AUDIO_OUTPUT_SYNCHRONOUS``): :func:`espeak_Synth` returns once the whole utterance has
passed through a callback that collects the int16 samples and the ``espeakEVENT_WORD`` events (onset in ms and the
character span of the word in the text).

eSpeak keeps global state, so one process holds at most one initialised engine, initialised on first use; the voice
and prosody are set before every utterance, and the noise generator of breathy variants is seeded from the text and
voice. Some state still carries over between utterances (the pitch-flutter phase), so identical output needs an
identical sequence of requests from a fresh engine: :class:`Speaker` with ``isolated=True`` provides that.

References
----------
eSpeak NG, ``speak_lib.h`` (the C API used here): https://github.com/espeak-ng/espeak-ng
"""

from __future__ import annotations

import ctypes
import threading
import zlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

__all__ = ["ESPEAK_SFREQ", "Utterance", "Voice", "Speaker", "synthesize"]

#: Native output rate of eSpeak NG (Hz).
ESPEAK_SFREQ = 22050

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """An eSpeak NG voice and its prosody.

    Parameters
    ----------
    name : str
        eSpeak voice name, optionally with a variant (``"en-us+f3"``).
    rate : int
        Speaking rate (words per minute, eSpeak accepts 80-450; default 175).
    pitch : int
        Base pitch (0-100; default 50).
    pitch_range : int
        Pitch range (0-100; default 50); 0 is monotone.
    """

    name: str = "en-us"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


@dataclass
class Utterance:
    """Synthesised speech with its word timings.

    Attributes
    ----------
    audio : ndarray, shape (n_samples,), float32
        Waveform in [-1, 1] at ``sfreq``.
    sfreq : float
        Sampling rate of ``audio`` (Hz).
    words : list of (float, float, str)
        ``(onset, duration, word)`` in seconds from the start of ``audio``.
    """

    audio: np.ndarray
    sfreq: float
    words: list[tuple[float, float, str]]

    @property
    def duration(self) -> float:
        """Length of the audio (s)."""
        return self.audio.shape[0] / self.sfreq


class _Engine:
    """The process-wide eSpeak NG library handle (initialised once)."""

    _lock = threading.Lock()
    _instance: _Engine | None = None

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        self._set_seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
        if hasattr(self.lib, "espeak_ng_InitializePath"):
            self.lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
            self.lib.espeak_ng_InitializePath(data_path)
        sfreq = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if sfreq <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {sfreq}); data path {data_path.decode()}")
        self.sfreq = int(sfreq)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Engine:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, wav, n_samples, events) -> int:  # noqa: ANN001 (ctypes pointers)
        if n_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._events.append((ev.audio_position, ev.text_position, ev.length))
            i += 1
        return 0  # continue synthesis

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(f"voice={voice.name!r}: not an eSpeak NG voice")
            self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
            self.lib.espeak_SetParameter(_PARAM_RANGE, int(voice.pitch_range), 0)
            self.lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
            self._chunks, self._events = [], []
            if self._set_seed is not None:  # breathy variants draw noise: seed it from the request
                self._set_seed(zlib.crc32(repr((text, voice)).encode()))
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            err = self.lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
            if err != 0:
                raise RuntimeError(f"espeak_Synth failed with error {err} for text {text[:40]!r}")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


def _word_spans(text: str, events: list[tuple[int, int, int]]) -> list[tuple[int, str]]:
    """Onset (ms) and word text of each word event (text positions are 1-based characters)."""
    out = []
    for audio_ms, pos, length in events:
        word = text[pos - 1 : pos - 1 + length].strip(" \t\n.,;:!?\"'()-")
        if word:
            out.append((audio_ms, word))
    return out


def _trim_words(audio: np.ndarray, sfreq: float, spans: list[tuple[int, str]]) -> list[tuple[float, float, str]]:
    """Word (onset, duration, word): each word ends where the next starts, with its trailing silence cut off."""
    frame = max(1, int(round(0.010 * sfreq)))
    n_frames = audio.shape[0] // frame
    energy = np.sqrt(np.mean(audio[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1))
    voiced = energy > 0.02 * (energy.max() if n_frames else 1.0)
    duration = audio.shape[0] / sfreq
    words = []
    for k, (onset_ms, word) in enumerate(spans):
        onset = min(onset_ms / 1000.0, duration)
        end = spans[k + 1][0] / 1000.0 if k + 1 < len(spans) else duration
        end = min(max(end, onset), duration)
        f0, f1 = int(onset * sfreq) // frame, int(np.ceil(end * sfreq / frame))
        idx = np.flatnonzero(voiced[f0:f1])
        if idx.size:
            end = min(end, (f0 + idx[-1] + 1) * frame / sfreq)
        words.append((round(float(onset), 4), round(float(max(end - onset, 0.0)), 4), word))
    return words


def synthesize(text: str, voice: Voice | None = None, sfreq: float | None = None) -> Utterance:
    """Speak ``text`` with eSpeak NG and return the waveform and the word timings.

    Parameters
    ----------
    text : str
        Plain text (one or more sentences).
    voice : Voice | None
        Voice and prosody; default ``Voice()`` (``en-us``, 175 wpm).
    sfreq : float | None
        Output sampling rate (Hz); the native 22050 Hz output is resampled with
        :func:`scipy.signal.resample_poly`. ``None`` keeps the native rate.

    Returns
    -------
    utterance : Utterance
        ``audio`` of shape ``(n_samples,)`` (float32, [-1, 1]) and ``words`` as ``(onset, duration, word)`` in
        seconds. A word's duration runs to the next word's onset, minus its trailing silence.

    Raises
    ------
    ValueError
        Unknown voice name.
    """
    voice = voice or Voice()
    engine = _Engine.get()
    raw, events = engine.synth(text, voice)
    audio = raw.astype(np.float32) / 32768.0
    native = float(engine.sfreq)
    if sfreq is not None and int(round(sfreq)) != int(native):
        up, down = int(round(sfreq)), int(native)
        g = np.gcd(up, down)
        audio = resample_poly(audio, up // g, down // g).astype(np.float32)
        native = float(sfreq)
    words = _trim_words(audio, native, _word_spans(text, events))
    return Utterance(audio=audio, sfreq=native, words=words)


class _Worker:
    """A private ``python -m ieegfm.simulate.speech`` process that synthesises on request (JSON lines + float32)."""

    def __init__(self) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ieegfm.simulate.speech"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def synthesize(self, text: str, voice: Voice, sfreq: float) -> Utterance:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"text": text, "voice": [voice.name, voice.rate, voice.pitch, voice.pitch_range], "sfreq": sfreq}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline()
        if not header:
            raise RuntimeError(f"the eSpeak worker process died (exit code {self.proc.poll()})")
        meta = json.loads(header)
        if "error" in meta:
            raise ValueError(meta["error"])
        audio = np.frombuffer(self.proc.stdout.read(4 * meta["n"]), dtype="<f4").copy()
        return Utterance(audio=audio, sfreq=meta["sfreq"], words=[tuple(w) for w in meta["words"]])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _serve() -> None:
    """Worker loop: one JSON request per stdin line; answer a JSON header line then the float32 samples."""
    import json
    import sys

    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            utt = synthesize(req["text"], Voice(*req["voice"]), req["sfreq"])
        except ValueError as err:
            sys.stdout.buffer.write((json.dumps({"error": str(err)}) + "\n").encode())
        else:
            header = {"n": int(utt.audio.size), "sfreq": utt.sfreq, "words": utt.words}
            sys.stdout.buffer.write((json.dumps(header) + "\n").encode())
            sys.stdout.buffer.write(utt.audio.astype("<f4").tobytes())
        sys.stdout.buffer.flush()


class Speaker:
    """Synthesise sentences with a fixed set of voices, caching each (sentence, voice) pair.

    eSpeak NG keeps state between utterances (e.g. the phase of its pitch flutter), so the waveform of a sentence
    depends on what the engine said before in the same process. With ``isolated=True`` synthesis runs in a private
    worker process (``python -m ieegfm.simulate.speech``) started by this speaker, so the audio depends only on the
    sequence of :meth:`say` calls: two speakers asked the same things return identical samples, even within one
    Python session. Use it as a context manager or call :meth:`close`.

    Parameters
    ----------
    voices : list of Voice
        The speakers of the simulated room.
    sfreq : float
        Output sampling rate (Hz).
    isolated : bool
        Synthesise in a private worker process (reproducible) instead of this process.
    """

    def __init__(self, voices: list[Voice], sfreq: float, isolated: bool = False) -> None:
        self.voices = list(voices)
        self.sfreq = float(sfreq)
        self.isolated = isolated
        self._cache: dict[tuple[str, int], Utterance] = {}
        self._worker: _Worker | None = None

    def say(self, text: str, voice_index: int) -> Utterance:
        """Utterance of ``text`` by ``voices[voice_index]`` (synthesised once, then reused)."""
        key = (text, int(voice_index))
        if key not in self._cache:
            voice = self.voices[voice_index]
            if self.isolated:
                if self._worker is None:
                    self._worker = _Worker()
                self._cache[key] = self._worker.synthesize(text, voice, self.sfreq)
            else:
                self._cache[key] = synthesize(text, voice, self.sfreq)
        return self._cache[key]

    @property
    def n_cached(self) -> int:
        """Number of distinct utterances synthesised so far."""
        return len(self._cache)

    def close(self) -> None:
        """Stop the worker process (if any)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
