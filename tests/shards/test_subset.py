"""Nested subsets of the training hours: nested, per patient, validation and test unchanged, read as planned."""

import json

import numpy as np
import pytest

from ieegfm.data import ShardDataModule
from ieegfm.data.tar import tar_members
from ieegfm.errors import InputError
from ieegfm.io.manifest import read_manifest
from ieegfm.shards.subset import chunk_order, nested_subset, subset_view, train_chunks


def _kept(view):
    m = read_manifest(view).to_dict()
    return {(i, k) for i, e in enumerate(m["shards"]["train"]) for k, n in enumerate(e["chunk_lengths"]) if n > 0}


@pytest.mark.parametrize("order", ["recording", "random"])
def test_budgets_are_nested_and_splits_fixed(patient, tmp_path, order):
    src = patient["root"] / "amb"
    views = [subset_view(src, tmp_path / f"h{h}", h, order=order, seed=3) for h in (0.05, 0.1, 0.2, "all")]
    kept = [_kept(v) for v in views]
    assert all(a < b for a, b in zip(kept, kept[1:])), "a smaller budget must be a strict subset of a larger one"
    source = read_manifest(src).to_dict()
    assert len(kept[-1]) == sum(len(e["chunk_lengths"]) for e in source["shards"]["train"])
    for v, h in zip(views, (0.05, 0.1, 0.2)):
        m = read_manifest(v).to_dict()
        got = m["subset"]["hours_per_subject"]["sim01"]
        assert h - 1e-9 <= got < h + source["chunk_s"] / 3600 + 1e-9  # the shortest prefix holding the budget
        assert m["splits"]["train"]["hours"] == pytest.approx(got)
        for sp in ("val", "test"):  # the same files, the same windows
            assert [(v / e["name"]).resolve() for e in m["shards"][sp]] == [
                (src / e["name"]).resolve() for e in source["shards"][sp]
            ]
            assert m["splits"][sp] == source["splits"][sp]
    chunks = train_chunks(src)
    first = sorted(chunks, key=lambda c: c.start_time)[: len(kept[0])]
    if order == "recording":  # the first hours recorded
        assert {(c.shard, c.index) for c in first} == kept[0]
    else:  # a random order, not the recording one
        assert {(c.shard, c.index) for c in first} != kept[0]


def test_the_loader_reads_only_the_kept_chunks(patient, tmp_path):
    src = patient["root"] / "amb"
    view = subset_view(src, tmp_path / "v", 0.1)
    manifest = read_manifest(view).to_dict()
    names = [
        [
            n.partition(".")[0]
            for n, _ in tar_members(str(view / e["name"]), want=lambda n: False)
            if n.endswith(".json")
        ]
        for e in manifest["shards"]["train"]
    ]
    kept = {names[i][k] for i, k in _kept(view)}
    dm = ShardDataModule(view, batch_size=8, window_s=3.0, shuffle_buffer=50)
    windows = [str(k) for batch in dm.train_dataloader() for k in batch["key"]]
    assert len(windows) == len(set(windows))  # each window once per epoch
    seen = [k.rsplit("/", 1)[0] for k in windows]
    assert set(seen) == kept  # every kept chunk, nothing else
    # each chunk gives its windows from a random offset: at most one fewer than the manifest counts
    assert manifest["splits"]["train"]["n_windows"] - len(kept) <= len(seen) <= manifest["splits"]["train"]["n_windows"]
    assert len(seen) < ShardDataModule(src, batch_size=8, window_s=3.0).n_windows("train") / 2


def test_more_hours_than_a_patient_has_is_an_error(patient, tmp_path):
    src = patient["root"] / "amb"
    with pytest.raises(InputError, match=r"hours=5 per patient, but subject 'sim01' has 0\.\d+ h"):
        subset_view(src, tmp_path / "v", 5)
    assert not (tmp_path / "v" / "manifest.json").exists()


def test_daytime_only_keeps_daytime_chunks(patient):
    chunks = train_chunks(patient["root"] / "amb")
    ordered = chunk_order(chunks, daytime_only=True)
    assert all(c.daytime for own in ordered.values() for c in own)
    kept = nested_subset(ordered, "all")
    assert sum(len(v) for v in kept.values()) == sum(c.daytime for c in chunks)


def test_the_view_is_reused_and_redone_when_asked_otherwise(patient, tmp_path):
    src = patient["root"] / "amb"
    v = subset_view(src, tmp_path / "v", 0.1)
    stamp = (v / "manifest.json").stat().st_mtime_ns
    assert subset_view(src, tmp_path / "v", 0.1) == v and (v / "manifest.json").stat().st_mtime_ns == stamp
    subset_view(src, tmp_path / "v", 0.2)
    assert json.loads((v / "manifest.json").read_text())["subset"]["hours"] == 0.2
    assert np.isclose(read_manifest(v).to_dict()["subset"]["hours_per_subject"]["sim01"], 0.2, atol=1 / 60)
