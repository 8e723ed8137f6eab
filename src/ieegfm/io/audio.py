"""Reading ambient audio in bounded segments with soundfile, resampled with scipy's polyphase filter."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ieegfm.errors import InputError

#: Context read on each side of a segment so that the resampling filter has no edge effect inside it (s).
MARGIN_S = 0.5


@dataclass(frozen=True)
class AudioInfo:
    """Header of an audio file: ``sfreq`` (Hz), ``n_samples`` per channel (what the file holds), ``n_channels``;
    ``declared_samples``: what a WAV header declares when it differs (truncated copy), else None."""

    path: Path
    sfreq: int
    n_samples: int
    n_channels: int
    declared_samples: int | None = None  # a WAV header's data size, when the file holds another length

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sfreq


def audio_info(path: str | Path) -> AudioInfo:
    """Read an audio header.

    Raises
    ------
    InputError
        Missing file or a format soundfile cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise InputError(f"{path}: cannot read audio ({str(err).splitlines()[0]}); expected WAV/FLAC/OGG") from None
    declared = wav_declared_frames(path) if path.suffix.lower() == ".wav" else None
    return AudioInfo(
        path=path,
        sfreq=int(info.samplerate),
        n_samples=int(info.frames),
        n_channels=int(info.channels),
        declared_samples=declared if declared is not None and declared != int(info.frames) else None,
    )


def wav_declared_frames(path: str | Path) -> int | None:
    """Frames a RIFF/WAVE header declares (its ``data`` chunk size / block align); None when it cannot tell
    (streaming sizes 0 or 0xFFFFFFFF, RF64, no ``fmt``/``data`` chunk)."""
    import struct

    try:
        with open(path, "rb") as f:
            riff = f.read(12)
            if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                return None
            align = None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                tag, size = head[:4], struct.unpack("<I", head[4:])[0]
                if tag == b"fmt ":
                    fmt = f.read(size + size % 2)
                    align = struct.unpack("<H", fmt[12:14])[0]
                elif tag == b"data":
                    if align in (None, 0) or size in (0, 0xFFFFFFFF):
                        return None
                    return size // align
                else:
                    f.seek(size + size % 2, 1)
    except (OSError, struct.error):
        return None


def read_segment(path: str | Path, tmin: float, tmax: float, sfreq: int) -> np.ndarray:
    """Read ``[tmin, tmax)`` seconds of mono audio at ``sfreq``, zero outside the file.

    The segment is read with :data:`MARGIN_S` of context on each side and resampled with
    :func:`scipy.signal.resample_poly`, so consecutive segments join without edge effects.

    Parameters
    ----------
    path : str | Path
        Audio file (multi-channel files are averaged to mono).
    tmin, tmax : float
        Segment bounds in seconds from the file start.
    sfreq : int
        Output rate (Hz).

    Returns
    -------
    audio : ndarray, shape (n_samples,)
        float32, ``n_samples = round(tmax * sfreq) - round(tmin * sfreq)``.
    """
    with sf.SoundFile(str(path)) as f:
        src = f.samplerate
        a = int(np.floor((tmin - MARGIN_S) * src))
        b = int(np.ceil((tmax + MARGIN_S) * src))
        lo, hi = max(a, 0), min(b, f.frames)
        buf = np.zeros(b - a, dtype=np.float32)
        if hi > lo:
            f.seek(lo)
            x = f.read(hi - lo, dtype="float32", always_2d=True).mean(axis=1)
            buf[lo - a : lo - a + len(x)] = x
    ratio = Fraction(sfreq, src)
    y = resample_poly(buf, ratio.numerator, ratio.denominator) if ratio != 1 else buf
    # y[i] is at time a / src + i / sfreq
    first = int(round(tmin * sfreq))
    n = int(round(tmax * sfreq)) - first
    offset = int(round((tmin - a / src) * sfreq))
    out = y[offset : offset + n]
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return out.astype(np.float32, copy=False)
