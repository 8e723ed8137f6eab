"""Peak memory and time of preprocessing an EDF file: the raw read, ieegfm streaming without and with the
high-gamma envelope, and MNE (preload + notch + filter + resample; + ``filter(70, 170)`` + ``apply_hilbert``).

Usage: ``python tools/bench_preprocess_rss.py [n_chans] [sfreq] [duration_s]`` (defaults 128 2048 3600: the
issue's 1 h, 128-channel, 2048 Hz recording). Writes a synthetic EDF, then runs each pipeline in a fresh process
and prints its peak RSS (``ru_maxrss``) and wall time; the lines ``ratio to raw read: bands=lfp X`` and
``ratio to raw read: bands=lfp,highgamma Y`` (goals: 1.5 and 2: reading + preprocessing vs reading the same
samples the same way, ``iter_chunks`` of 60 s), the ratios to MNE (goals: peak RSS <= 0.2x, throughput >= 3x),
and the agreement with MNE: lfp after band-passing both to 0.5-18 Hz, the envelope below 15 Hz (mean correlation,
goal >= 0.99). Never gates CI.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import mne
import numpy as np

IEEGFM = """
import sys
import numpy as np
from ieegfm.io.ieeg import iter_chunks, open_raw
from ieegfm.preprocess import StreamingPreprocessor
raw = open_raw(sys.argv[1])
pp = StreamingPreprocessor(raw.info["sfreq"], len(raw.ch_names))
n = 0
with open(sys.argv[2], "wb") as out:  # (n_times, n_chans) float32, written as it streams
    for chunk in iter_chunks(raw, raw.ch_names, 60.0):
        y = pp.process(chunk)[0]
        out.write(np.ascontiguousarray(y.T, dtype=np.float32).tobytes())
        n += y.shape[1]
    y = pp.flush()[0]
    out.write(np.ascontiguousarray(y.T, dtype=np.float32).tobytes())
    n += y.shape[1]
print(n)
"""

RAW = """
import sys
import numpy as np
from ieegfm.io.ieeg import iter_chunks, open_raw
raw = open_raw(sys.argv[1])
n = 0
for chunk in iter_chunks(raw, raw.ch_names, 60.0):  # the samples as the packer reads them, touched once
    n += chunk.shape[1] + 0 * int(np.isnan(chunk[:, :1]).sum())
print(n)
"""

IEEGFM_HG = """
import sys
import numpy as np
from ieegfm.io.ieeg import iter_chunks, open_raw
from ieegfm.preprocess import StreamingEnvelopes, StreamingPreprocessor
raw = open_raw(sys.argv[1])
sfreq, n_chans = raw.info["sfreq"], len(raw.ch_names)
pp = StreamingPreprocessor(sfreq, n_chans)
env = StreamingEnvelopes(sfreq, n_chans, ["highgamma"], line_freq=60.0, sfreq_out=40.0)
with open(sys.argv[2], "wb") as out:  # the envelope rows, (n_times, n_chans) float32
    for chunk in iter_chunks(raw, raw.ch_names, 60.0):
        pp.process(chunk)
        out.write(np.ascontiguousarray(env.process(chunk)[0].T, dtype=np.float32).tobytes())
    pp.flush()
    out.write(np.ascontiguousarray(env.flush()[0].T, dtype=np.float32).tobytes())
"""

MNE_HG = """
import sys
import numpy as np
import mne
raw = mne.io.read_raw_edf(sys.argv[1], preload=True, verbose="error")
raw.notch_filter(np.arange(60.0, raw.info["sfreq"] / 2, 60.0), verbose="error")
lfp = raw.copy().filter(0.05, 50.0, verbose="error").resample(40.0, verbose="error")
raw.filter(70.0, 170.0, verbose="error").apply_hilbert(envelope=True, verbose="error")
raw.resample(40.0, verbose="error")
np.save(sys.argv[2], raw.get_data().astype(np.float32))
"""

MNE = """
import sys
import numpy as np
import mne
raw = mne.io.read_raw_edf(sys.argv[1], preload=True, verbose="error")
raw.notch_filter(np.arange(60.0, raw.info["sfreq"] / 2, 60.0), verbose="error")
raw.filter(0.05, 50.0, verbose="error")
raw.resample(40.0, verbose="error")
np.save(sys.argv[2], raw.get_data().astype(np.float32))
print(raw.n_times)
"""


def main(n_chans: int = 128, sfreq: float = 2048.0, duration_s: float = 3600.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_ieeg.edf"
        rng = np.random.default_rng(0)
        n = int(duration_s * sfreq)
        data = np.empty((n_chans, n), dtype=np.float64)
        step = int(600 * sfreq)
        for i in range(0, n, step):  # random walk + white noise + line noise, ~50 uV
            m = min(step, n - i)
            t = (i + np.arange(m)) / sfreq
            data[:, i : i + m] = 20e-6 * rng.standard_normal((n_chans, m)) + 10e-6 * np.sin(2 * np.pi * 60 * t)
        info = mne.create_info([f"LA{i + 1}" for i in range(n_chans)], sfreq, "seeg")
        mne.export.export_raw(path, mne.io.RawArray(data, info, verbose="error"), fmt="edf", verbose="error")
        del data
        print(f"{n_chans} ch x {sfreq:g} Hz x {duration_s:g} s EDF ({path.stat().st_size / 1e9:.2f} GB)", flush=True)
        # each measurement in its own grandchild so ru_maxrss of one does not mask the other
        results = {}
        runs = (("raw read", RAW), ("ieegfm", IEEGFM), ("ieegfm+hg", IEEGFM_HG), ("mne", MNE), ("mne+hg", MNE_HG))
        for name, code in runs:
            wrapper = (
                f"import resource, sys, time, subprocess; t = time.perf_counter(); "
                f"subprocess.run([sys.executable, '-c', {code!r}, {str(path)!r}, {str(Path(tmp) / name)!r}], "
                "check=True, capture_output=True); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t)"
            )
            out = subprocess.run([sys.executable, "-c", wrapper], check=True, capture_output=True, text=True)
            rss, wall = map(float, out.stdout.split())
            results[name] = (rss, wall)
            print(f"{name:9s} peak RSS {rss:8.0f} MB   wall {wall:7.1f} s", flush=True)
        raw_s = results["raw read"][1]
        print(f"ratio to raw read: bands=lfp {results['ieegfm'][1] / raw_s:.2f} (goal <= 1.5)")
        print(f"ratio to raw read: bands=lfp,highgamma {results['ieegfm+hg'][1] / raw_s:.2f} (goal <= 2)")
        print(f"ratio to raw read: MNE lfp {results['mne'][1] / raw_s:.2f}, MNE lfp + highgamma envelope "
              f"{results['mne+hg'][1] / raw_s:.2f}")  # fmt: skip
        print(
            f"bands=lfp,highgamma vs MNE with the envelope: peak RSS {results['ieegfm+hg'][0] / results['mne+hg'][0]:.3f}, "
            f"throughput {results['mne+hg'][1] / results['ieegfm+hg'][1]:.1f}x"
        )
        print(
            f"peak RSS ratio ieegfm / MNE: {results['ieegfm'][0] / results['mne'][0]:.3f} (goal <= 0.2); "
            f"throughput ratio: {results['mne'][1] / results['ieegfm'][1]:.1f}x (goal >= 3)"
        )
        ref = np.load(Path(tmp) / "mne.npy", mmap_mode="r")
        ours = np.fromfile(Path(tmp) / "ieegfm", dtype=np.float32).reshape(-1, n_chans).T
        n = min(ours.shape[1], ref.shape[1])
        sl = slice(400, n - 400)  # first and last 10 s skipped (edge effects of both)
        corr = []
        for i in range(0, n_chans, 16):  # 16 channels at a time: bounded memory
            band = [
                mne.filter.filter_data(np.asarray(a[i : i + 16, :n], dtype=float), 40.0, 0.5, 18.0, verbose="error")
                for a in (ours, ref)
            ]
            corr += [np.corrcoef(a, b)[0, 1] for a, b in zip(band[0][:, sl], band[1][:, sl])]
        print(f"agreement: mean correlation {np.mean(corr):.5f}, min {np.min(corr):.5f} (0.5-18 Hz; goal >= 0.99)")
        ref = np.load(Path(tmp) / "mne+hg.npy", mmap_mode="r")
        ours = np.fromfile(Path(tmp) / "ieegfm+hg", dtype=np.float32).reshape(-1, n_chans).T
        n = min(ours.shape[1], ref.shape[1])
        corr = []
        for i in range(0, n_chans, 16):
            band = [
                mne.filter.filter_data(np.asarray(a[i : i + 16, :n], dtype=float), 40.0, None, 15.0, verbose="error")
                for a in (ours, ref)
            ]
            corr += [np.corrcoef(a, b)[0, 1] for a, b in zip(band[0][:, sl], band[1][:, sl])]
        print(f"agreement, highgamma envelope: mean correlation {np.mean(corr):.5f}, min {np.min(corr):.5f} (< 15 Hz)")


if __name__ == "__main__":
    main(*(float(a) if i else int(a) for i, a in enumerate(sys.argv[1:])))
