"""No silent data loss: a header that declares more than its file holds is a warning naming both lengths, recorded
in the manifest, an error under strict=true; a split that comes out empty is a warning."""

import json
import logging
from pathlib import Path

import pytest

from ieegfm.__main__ import main


def _rows(table):
    lines = table.read_text().splitlines()
    return [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]


def _truncate(path, keep_bytes):
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])
    return len(data)


def test_truncated_edf_is_a_warning_recorded_in_the_manifest(recordings, tmp_path, caplog):
    assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 'intact'}"]) == 0
    blocks = json.loads((tmp_path / "intact" / "manifest.json").read_text())["blocks"]
    (edf,) = [Path(b["ieeg"]) for b in blocks.values() if b["split"] == "test"]  # the test split's only block
    _truncate(edf, 20_000)  # header + ~3 s of 60: shorter than a chunk of one window
    with caplog.at_level(logging.WARNING):
        assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}"]) == 0
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    (entry,) = m["length_mismatches"]
    assert entry["file"] == str(edf) and entry["declared_s"] == 60.0 and entry["held_s"] < 5
    assert f"{edf}: the EDF header declares 60.0 s of data records, the file holds" in caplog.text
    assert m["empty_splits"] == ["test"]  # the split it emptied is said and listed
    assert "split 'test' is empty: no chunk of at least one window although split.test=0.15" in caplog.text


def test_truncated_edf_under_strict_is_one_line(recordings, tmp_path, capsys):
    edf = recordings.parent / _rows(recordings)[1]["ieeg"]
    _truncate(edf, 20_000)
    assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}", "strict=true"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and "the EDF header declares 60.0 s" in err[0] and str(edf) in err[0]
    assert not (tmp_path / "s" / "manifest.json").exists()


def test_truncated_wav_is_named_with_both_lengths(recordings, tmp_path, caplog):
    wav = recordings.parent / _rows(recordings)[0]["audio"]
    _truncate(wav, 200_000)  # ~6 s of 60 at 16 kHz, 16-bit
    with caplog.at_level(logging.WARNING):
        assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}"]) == 0
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    (entry,) = m["length_mismatches"]
    assert entry["file"] == str(wav) and abs(entry["declared_s"] - 60.0) < 0.01 and entry["held_s"] < 7
    assert f"{wav}: the WAV header declares 60.0 s, the file holds" in caplog.text
    assert any(str(k).endswith(_rows(recordings)[0]["ieeg"].split("/")[-1]) for k in m["skipped"])


def test_intact_files_record_no_mismatch(recordings, tmp_path):
    assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}"]) == 0
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["length_mismatches"] == [] and m["empty_splits"] == []


def test_warnings_do_not_write_over_the_progress_bars(recordings, tmp_path):
    import subprocess
    import sys

    wav = recordings.parent / _rows(recordings)[0]["audio"]
    _truncate(wav, 200_000)
    run = subprocess.run(
        [sys.executable, "-m", "ieegfm", "pack", f"recordings={recordings}", f"out={tmp_path / 's'}"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0
    lines = run.stderr.replace("\r", "\n").splitlines()
    (warning,) = [line for line in lines if "the WAV header declares" in line]
    assert warning.split(" ", 2)[1] == "WARNING", warning  # a line of its own: time, level, logger, message


def test_the_pack_bar_counts_the_seconds_that_are_packed(recordings, tmp_path, monkeypatch):
    import ieegfm.shards.work as work_module

    bars = []

    class Recording:
        def __init__(self, iterable=None, total=None, **kwargs):
            self.iterable, self.total, self.n = iterable, total, 0.0
            bars.append(self)

        def __iter__(self):
            return iter(self.iterable)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    monkeypatch.setattr(work_module, "tqdm", Recording)
    assert main(["pack", f"recordings={recordings}", f"out={tmp_path / 's'}"]) == 0
    (bar,) = [b for b in bars if b.total is not None and b.iterable is None]
    blocks = json.loads((tmp_path / "s" / "manifest.json").read_text())["blocks"].values()
    packed = sum(b["duration_s"] - sum(b["guard_trim_s"]) for b in blocks)
    assert bar.total == pytest.approx(packed) and bar.n == pytest.approx(bar.total)  # never past its total
    assert packed < sum(b["duration_s"] for b in blocks)  # the guard trims are not counted


def _brainvision_from(fif: Path, keep: float = 1.0) -> Path:
    """The recording of ``fif`` as BrainVision (float32 µV, multiplexed), its ``.eeg`` holding ``keep`` of the
    samples while the header's ``DataPoints`` declares them all."""
    import mne
    import numpy as np

    raw = mne.io.read_raw_fif(fif, preload=True, verbose="error")
    data = raw.get_data() * 1e6
    n = data.shape[1]
    stem = fif.with_name(fif.name.replace("_ieeg.fif", "_ieeg"))
    chans = "\n".join(f"Ch{i + 1}={name},,1,µV" for i, name in enumerate(raw.ch_names))
    stem.with_suffix(".vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem.name}.eeg\nMarkerFile={stem.name}.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={len(raw.ch_names)}\nDataPoints={n}\nSamplingInterval={1e6 / raw.info['sfreq']:g}\n"
        f"[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n[Channel Infos]\n{chans}\n"
    )
    stem.with_suffix(".vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem.name}.eeg\n[Marker Infos]\nMk1=New Segment,,1,1,0,{raw.info['meas_date']:%Y%m%d%H%M%S%f}\n"
    )
    data[:, : int(keep * n)].T.astype(np.float32).tofile(stem.with_suffix(".eeg"))
    return stem.with_suffix(".vhdr")


def test_truncated_brainvision_and_audio_longer_than_its_block_are_said(tmp_path, caplog, capsys):
    from recording_fixtures import T0, write_block, write_table

    rows = []
    for i in range(3):
        start = T0.replace(minute=i)
        fif, wav = write_block(
            tmp_path / "d", f"r{i}", start, fmt="fif", seed=i, audio_duration=70.0 if i == 1 else None
        )
        rows.append(("01", "1", _brainvision_from(fif, keep=0.5 if i == 2 else 1.0), wav, start))
    table = write_table(tmp_path / "d", rows)
    with caplog.at_level(logging.WARNING):
        assert main(["pack", f"recordings={table}", f"out={tmp_path / 's'}", "split.val=0", "split.test=0.34"]) == 0
    vhdr, wav = rows[2][2], rows[1][3]
    assert f"{vhdr}: the BrainVision header declares 60.0 s (DataPoints), the file holds 30.0 s" in caplog.text
    assert f"{wav}: the audio runs 10.0 s past the end of its 60.0-s iEEG block r1_ieeg.vhdr" in caplog.text
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert {(e["file"], e["kind"]) for e in m["length_mismatches"]} == {
        (str(vhdr), "BrainVision header vs file"),
        (str(wav), "audio longer than its iEEG block (the rest is not packed)"),
    }
    capsys.readouterr()
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 'strict'}", "split.val=0", "strict=true"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and "the audio runs 10.0 s past the end" in err[0] and "(strict=true)" in err[0]
