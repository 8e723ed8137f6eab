"""Electrode positions from BIDS electrodes.tsv (issue 19, items 1-2): read, matched to channels, packed, contracted.

The real sidecars are those of the Podcast ECoG dataset (OpenNeuro ds005574, CC0), sub-01: 103 contacts in
MNI152NLin2009aSym, mm; its channels.tsv (with a byte-order mark) lists G1, which has no position.
"""

import json
from pathlib import Path

import pytest

from ieegfm.__main__ import main
from ieegfm.checkpoint import subjects_of
from ieegfm.errors import InputError
from ieegfm.io.electrodes import channel_coordinates, contact_position, read_electrodes
from ieegfm.io.manifest import read_manifest
from ieegfm.io.tsv import read_tsv

PODCAST = Path(__file__).parent / "bids" / "ds005574" / "sub-01" / "ieeg"
ELECTRODES = PODCAST / "sub-01_space-MNI152NLin2009aSym_electrodes.tsv"


def test_the_podcast_sidecars_read_with_their_space_and_units():
    e = read_electrodes(ELECTRODES)
    assert e.space == "MNI152NLin2009aSym" and e.units == "mm" and len(e.positions) == 103
    assert e.positions["G2"] == (60.0, -1.333333, -29.333333)
    channels = [r["name"] for _, r in read_tsv(PODCAST / "sub-01_task-podcast_channels.tsv", "channels", ("name",), "")]
    assert channels[0] == "G1"  # the byte-order mark is not part of the first column's name
    coords = channel_coordinates(channels[:4], ELECTRODES)
    assert coords["positions"][0] is None and coords["n_missing"] == 1  # G1: "no localization"
    assert coords["positions"][1] == [60.0, -1.3333, -29.3333]
    # a bipolar channel sits at the midpoint of its contacts; names match ignoring case
    mid = contact_position("g2-G3", e)
    assert mid == pytest.approx(((60.0 + 66.0) / 2, (-1.333333 - 9.333333) / 2, (-29.333333 - 21.333333) / 2))
    assert contact_position("G1-G2", e) is None


def test_bad_electrodes_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "sub-01_electrodes.tsv"
    bad.write_text("name\tx\ty\tz\nA1\t1\t2\tthree\n")
    with pytest.raises(InputError, match=r"sub-01_electrodes.tsv, row 1: coordinates \['1', '2', 'three'\] of 'A1'"):
        read_electrodes(bad)
    bad.write_text("name\tx\ty\tz\nA1\t1\t2\t3\nA1\t1\t2\t3\n")
    with pytest.raises(InputError, match="contact 'A1' listed twice"):
        read_electrodes(bad)
    bad.write_text("name\tx\ty\nA1\t1\t2\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['z'\]"):
        read_electrodes(bad)
    bad.write_text("name\tx\ty\tz\nA1\tn/a\tn/a\tn/a\n")  # unknown position: left out, not an error
    assert read_electrodes(bad).positions == {} and read_electrodes(bad).space is None


def _with_electrodes(table: Path, electrodes: str) -> Path:
    lines = table.read_text().splitlines()
    out = [lines[0] + "\telectrodes"] + [line + f"\t{electrodes}" for line in lines[1:]]
    table.write_text("\n".join(out) + "\n")
    return table


def test_pack_records_each_channels_position_and_the_contract_keeps_it(recordings, tmp_path):
    contacts = {f"{s}{i}": (10.0 * k + i, -5.0 * k, 2.0 * i) for k, s in enumerate(("LA", "LH")) for i in range(1, 5)}
    rows = [f"{n}\t{x}\t{y}\t{z}" for n, (x, y, z) in contacts.items() if n != "LH4"] + ["LH4\tn/a\tn/a\tn/a"]
    (recordings.parent / "sub-01_space-ACPC_electrodes.tsv").write_text("name\tx\ty\tz\n" + "\n".join(rows) + "\n")
    (recordings.parent / "sub-01_space-ACPC_coordsystem.json").write_text(
        json.dumps({"iEEGCoordinateSystem": "ACPC", "iEEGCoordinateUnits": "mm"})
    )
    table = _with_electrodes(recordings, "sub-01_space-ACPC_electrodes.tsv")
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 's'}", "split.val=0.25", "split.test=0.25"]) == 0
    m = read_manifest(tmp_path / "s")
    sub = m.subjects["01"]
    c = sub.coordinates
    assert c["space"] == "ACPC" and c["units"] == "mm" and len(c["positions"]) == len(sub.ch_names)
    for name, pos in zip(sub.ch_names, c["positions"]):  # bipolar: the midpoint of its two contacts
        a, b = name.split("-")
        if "LH4" in (a, b):
            assert pos is None
        else:
            assert pos == pytest.approx([(u + v) / 2 for u, v in zip(contacts[a], contacts[b])], abs=1e-4)
    assert c["n_missing"] == 1
    assert subjects_of(m)["01"]["coordinates"] == c  # what a checkpoint contract records


def test_a_bad_electrodes_file_fails_the_pack_before_any_work(recordings, tmp_path, capsys):
    (recordings.parent / "bad_electrodes.tsv").write_text("name\tx\ty\tz\nLA1\t1\tx\t3\n")
    table = _with_electrodes(recordings, "bad_electrodes.tsv")
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err
    assert "bad_electrodes.tsv, row 1: coordinates ['1', 'x', '3'] of 'LA1' are not numbers" in err
    assert not (tmp_path / "s" / ".work").exists() and not (tmp_path / "s" / "manifest.json").exists()
