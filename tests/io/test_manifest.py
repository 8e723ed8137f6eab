"""The one manifest reader and writer: damaged manifests are one line naming the key; writes are atomic."""

from __future__ import annotations

import json

import pytest

from ieegfm.__main__ import main
from ieegfm.errors import InputError
from ieegfm.io.manifest import MANIFEST, SIZES, read_manifest, withdraw_manifest, write_manifest


def _minimal() -> dict:
    return {
        "sfreq": 40.0,
        "window_s": 3.0,
        "n_chans_max": 2,
        "n_features": 8,
        "subjects": {"01": {"index": 0, "ch_names": ["A1-A2", "A2-A3"]}},
        "shards": {"train": [{"name": "train-000000.tar", "n_samples": 3, "n_windows": 20}], "val": [], "test": []},
        "splits": {},
    }


def test_write_then_read_round_trip_and_sizes(tmp_path):
    path = write_manifest(tmp_path, _minimal())
    assert path == tmp_path / MANIFEST and read_manifest(tmp_path).to_dict() == _minimal()
    assert json.loads((tmp_path / SIZES).read_text()) == {"train-000000.tar": 3}
    assert not list(tmp_path.glob("*.tmp"))
    withdraw_manifest(tmp_path)
    assert not (tmp_path / MANIFEST).exists() and not (tmp_path / SIZES).exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.pop("sfreq"), r"key 'sfreq' is missing; expected a positive number \(Hz\)"),
        (lambda m: m.update(sfreq="40"), r"key 'sfreq' is \"40\"; expected a positive number"),
        (lambda m: m.update(sfreq=float("nan")), r"key 'sfreq' is NaN"),
        (lambda m: m.update(n_chans_max=-1), r"key 'n_chans_max' is -1; expected a non-negative integer"),
        (lambda m: m["subjects"]["01"].pop("index"), r"key 'subjects' .*expected an object of subjects"),
        (lambda m: m["shards"]["train"][0].pop("n_windows"), r"key 'shards' .*each a list of shards"),
    ],
)
def test_malformed_keys_are_named(tmp_path, edit, match):
    m = _minimal()
    edit(m)
    (tmp_path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(InputError, match=match):
        read_manifest(tmp_path)
    with pytest.raises(InputError, match="refusing to write"):
        write_manifest(tmp_path / "other", m)


def test_damaged_or_missing_manifest_is_one_line_through_the_cli(tmp_path, capsys):
    (tmp_path / MANIFEST).write_text('{"sfreq": 40.0, "window_')  # a copy cut short
    with pytest.raises(InputError, match=r"manifest.json is not readable JSON .*a damaged copy"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_bytes(b"\xff\xfe[]")
    with pytest.raises(InputError, match="not readable JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(InputError, match="holds a list; expected an object"):
        read_manifest(tmp_path)
    capsys.readouterr()
    (tmp_path / MANIFEST).write_text('{"sfreq": 40.0, "window_')
    assert main(["pretrain", f"shards={tmp_path}", f"out={tmp_path / 'run'}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and "not readable JSON" in err[0], err


def test_every_shard_folder_kind_reads_through_the_one_reader(patient):
    """Packed ambient and task shards read and pass the schema checks (the writers go through write_manifest)."""
    for folder in (patient["root"] / "amb", patient["task"]):
        m = read_manifest(folder)
        assert json.loads((folder / SIZES).read_text()) == {
            e.name: e.n_samples for entries in m.shards.values() for e in entries
        }


def test_verify_finds_damage_that_reading_does_not(patient, tmp_path, capsys):
    """A flipped byte inside an array keeps the tar readable; `ieegfm verify` finds it by the manifest's sha256."""
    import shutil

    copy = tmp_path / "task"
    shutil.copytree(patient["task"], copy)
    assert main(["verify", f"shards={copy}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == report["shards"] == sum(len(v) for v in read_manifest(copy).shards.values())
    tar = sorted(copy.glob("train-*.tar"))[0]
    data = bytearray(tar.read_bytes())
    data[2000] ^= 0xFF  # inside the first member's .npy bytes: same size, same tar headers
    tar.write_bytes(bytes(data))
    assert main(["verify", f"shards={copy}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"1 of {report['shards']} shard(s) damaged or missing ({tar.name}: sha256 differs" in err[0]
    )


def test_the_typed_manifest_is_frozen_and_gives_the_json_back(patient, tmp_path):
    """read_manifest returns a frozen, typed object; to_dict() is the JSON as written, and writing it back gives
    the same bytes (the on-disk format does not change)."""
    import dataclasses

    from ieegfm.io.manifest import Manifest, ShardEntry, SubjectEntry

    folder = patient["task"]
    m = read_manifest(folder)
    raw = json.loads((folder / MANIFEST).read_text())
    assert isinstance(m, Manifest) and m.to_dict() == raw
    assert m.sfreq == raw["sfreq"] and m.n_features == raw["n_features"] and m.n_chans_max == raw["n_chans_max"]
    (subject,) = m.subjects
    assert isinstance(m.subjects[subject], SubjectEntry)
    assert list(m.subjects[subject].ch_names) == raw["subjects"][subject]["ch_names"]
    assert all(isinstance(e, ShardEntry) for e in m.entries("train"))
    assert m.n_windows("test") == sum(e["n_windows"] for e in raw["shards"]["test"]) > 0
    assert m.window_n == round(raw["window_s"] * raw["sfreq"]) and m.entries("nope") == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.sfreq = 1.0  # type: ignore[misc]
    m.to_dict()["sfreq"] = -1  # a copy: the object does not change
    assert m.sfreq == raw["sfreq"]
    write_manifest(tmp_path, m.to_dict())
    assert (tmp_path / MANIFEST).read_bytes() == (folder / MANIFEST).read_bytes()
    assert (tmp_path / SIZES).read_bytes() == (folder / SIZES).read_bytes()
