"""Patient identifiers in EDF headers (name, hospital number, birth date, technician, admin code) never reach shards,
manifests, logs or run folders: every byte written is searched."""

import datetime as dt
import logging

import mne
import pytest
from recording_fixtures import FAST, T0, TINY_MODEL, write_block, write_table

from ieegfm.__main__ import main

IDENTIFIERS = [
    "HOSP98765432",
    "Johanna",
    "Xylophone",
    "04-JUL-1961",
    "1961-07-04",
    "Quackenbush",
    "EMR5551234",
]


def _with_identifiers(edf):
    """Rewrite an EDF's patient and recording fields (EDF+ subfields) full of identifiers."""
    data = bytearray(edf.read_bytes())
    patient = b"HOSP98765432 F 04-JUL-1961 Johanna_Xylophone"
    recording = data[88:168].decode().split(" ")[:2]  # "Startdate dd-MMM-yyyy"
    recording = (" ".join(recording) + " EMR5551234 Dr_Quackenbush NihonKohden").encode()
    data[8:88] = patient.ljust(80)
    data[88:168] = recording.ljust(80)
    edf.write_bytes(bytes(data))


@pytest.fixture
def identified(tmp_path):
    rows = []
    for i in range(4):
        start = T0 + dt.timedelta(seconds=60 * i)
        ieeg, wav = write_block(tmp_path / "data", f"sub-01_run-{i}", start, seed=i)
        _with_identifiers(ieeg)
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp_path / "data", rows)
    info = mne.io.read_raw(rows[0][2], verbose="error").info
    assert info["subject_info"]["his_id"] == "HOSP98765432"  # MNE does read them
    return table


def test_no_identifier_reaches_anything_written(identified, tmp_path, caplog, capsys):
    out, run = tmp_path / "shards", tmp_path / "run"
    with caplog.at_level(logging.DEBUG):
        assert main(["pack", f"recordings={identified}", f"out={out}", "-v"]) == 0
        pretrain = [f"shards={out}", f"out={run}", "trainer.max_steps=4", "data.batch_size=8", *TINY_MODEL, *FAST]
        assert main(["pretrain", *pretrain, "trainer.val_check_interval=4"]) == 0
    captured = capsys.readouterr()
    written = [p for folder in (out, run) for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".tar" for p in written) and any(p.suffix == ".ckpt" for p in written)
    sources = list((tmp_path / "data").glob("*.edf"))
    for token in IDENTIFIERS[:3] + IDENTIFIERS[5:]:  # the search finds them where they are
        assert all(token.encode() in p.read_bytes() for p in sources), token
    for token in IDENTIFIERS:
        needle = token.encode()
        leaks = [str(p) for p in written if needle in p.read_bytes()]
        assert not leaks, (token, leaks)
        for text in (caplog.text, captured.out, captured.err):
            assert token not in text, token
