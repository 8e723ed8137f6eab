import datetime as dt
import json
import logging

import numpy as np
import pytest
import webdataset as wds
from recording_fixtures import T0, save_tiny_wav2vec2, write_block, write_table

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.errors import InputError
from ieegfm.shards import pack as pack_mod
from ieegfm.shards import work as work_mod
from ieegfm.shards.pack import pack

BASE = ["split.val=0.25", "split.test=0.25", "chunk_s=20", "samples_per_shard=2"]


def _cfg(table, out, *extra):
    return load_config("pack", overrides=[f"recordings={table}", f"out={out}", *BASE, *extra])


def _samples(out, split=None):
    manifest = json.loads((out / "manifest.json").read_text())
    urls = [str(out / s["name"]) for sp, ss in manifest["shards"].items() for s in ss if split in (None, sp)]
    return list(wds.WebDataset(urls, shardshuffle=False).decode())


def test_pack_writes_documented_shards(recordings, tmp_path):
    out = tmp_path / "shards"
    manifest = json.loads(pack(_cfg(recordings, out)).read_text())
    samples = _samples(out)
    assert samples, "no samples"
    s = samples[0]
    assert set(s) >= {"brain.npy", "audio.npy", "json", "__key__"}
    meta = s["json"]
    n_chans = len(meta["ch_names"])
    # bipolar along 2 shafts of 4 contacts: 3 + 3 pairs; EKG1 and DC01 are gone
    assert meta["ch_names"] == ["LA1-LA2", "LA2-LA3", "LA3-LA4", "LH1-LH2", "LH2-LH3", "LH3-LH4"]
    assert s["brain.npy"].dtype == np.float16 and s["brain.npy"].shape == (n_chans, 800)  # 20 s at 40 Hz
    assert s["audio.npy"].shape == (40, 800)
    assert np.abs(s["brain.npy"]).max() <= 20
    assert {"subject", "session", "source", "start_time", "day", "daytime", "sfreq"} <= set(meta)
    assert meta["sfreq"] == 40.0 and meta["daytime"] is True and meta["day"] == 0
    assert manifest["subjects"]["01"]["dropped"]["EKG1"].startswith("non-neural")
    assert set(manifest["splits"]) == {"train", "val", "test"}
    assert all(
        set(b["work_sha256"]) == {"brain.npy", "audio.npy", "valid.npy", "channels.json"}
        for b in manifest["blocks"].values()
    )
    assert manifest["splits"]["train"]["hours"] == pytest.approx(2 * 60 / 3600, rel=0.01)
    assert (out / "sizes.json").is_file() and not (out / ".work").exists()
    sizes = json.loads((out / "sizes.json").read_text())
    assert sum(sizes.values()) == len(samples)
    # audio targets z-scored with training statistics: train mean ~0, std ~1 per feature
    train = np.concatenate([x["audio.npy"].astype(float) for x in _samples(out, "train")], axis=1)
    assert np.allclose(train.mean(1), 0, atol=0.05) and np.allclose(train.std(1), 1, atol=0.05)


def test_guard_gap_separates_splits(recordings, tmp_path):
    out = tmp_path / "shards"
    manifest = json.loads(pack(_cfg(recordings, out)).read_text())
    spans = {}
    for s in _samples(out):
        m = s["json"]
        t0 = dt.datetime.fromisoformat(m["start_time"])
        t1 = t0 + dt.timedelta(seconds=s["brain.npy"].shape[1] / m["sfreq"])
        spans.setdefault(m["split"], []).append((t0, t1))
    guard = manifest["guard_s"]
    assert guard >= 3.0
    for a in spans:
        for b in spans:
            if a == b:
                continue
            for s0, s1 in spans[a]:
                for t0, t1 in spans[b]:
                    gap = max((t0 - s1).total_seconds(), (s0 - t1).total_seconds())
                    assert gap >= guard - 1e-6, (a, b, gap)


def test_same_input_same_bytes_and_rerun_after_interruption(recordings, tmp_path, monkeypatch):
    a = json.loads(pack(_cfg(recordings, tmp_path / "a")).read_text())

    # interrupt the second pack while it writes shards
    calls = {"n": 0}
    real_write = pack_mod.ShardWriter.write

    def failing_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the 3rd sample opened the 2nd shard
            raise KeyboardInterrupt
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pack_mod.ShardWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        pack(_cfg(recordings, tmp_path / "b"))
    left = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "manifest.json" not in left and all(not n.endswith(".tar") or n == "train-000000.tar" for n in left)
    assert any(n.endswith(".tar.tmp") for n in left)  # the unfinished shard does not look complete
    monkeypatch.setattr(pack_mod.ShardWriter, "write", real_write)
    b = json.loads(pack(_cfg(recordings, tmp_path / "b")).read_text())
    assert [s["sha256"] for sp in ("train", "val", "test") for s in a["shards"][sp]] == [
        s["sha256"] for sp in ("train", "val", "test") for s in b["shards"][sp]
    ]
    assert not list((tmp_path / "b").glob("*.tmp"))


def test_wav2vec2_targets_from_a_saved_tiny_model(recordings, tmp_path):
    save_tiny_wav2vec2(tmp_path / "w2v", num_hidden_layers=3)
    out = tmp_path / "shards"
    manifest = json.loads(
        pack(
            _cfg(
                recordings,
                out,
                "audio.features=wav2vec2",
                f"audio.model={tmp_path / 'w2v'}",
                "audio.layer=2",
                "audio.chunk_s=10",
            )
        ).read_text()
    )
    assert manifest["n_features"] == 16 and manifest["audio"]["layer"] == 2
    assert manifest["guard_s"] == pytest.approx(3.0 + 10.0)  # window + the model's context
    assert _samples(out)[0]["audio.npy"].shape[0] == 16


# -- bad input ----------------------------------------------------------------------------------------------------


def test_audio_shorter_than_block_is_skipped_and_logged(tmp_path, caplog):
    rows = []
    for i in range(4):
        start = T0 + dt.timedelta(seconds=60 * i)
        ieeg, wav = write_block(tmp_path / "d", f"r{i}", start, audio_duration=30.0 if i == 1 else None, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp_path / "d", rows)
    caplog.set_level(logging.WARNING)
    manifest = json.loads(pack(_cfg(table, tmp_path / "s", "split.val=0", "split.test=0.3")).read_text())
    assert any("r1_audio.wav" in k or "r1_ieeg" in k for k in manifest["skipped"])
    assert "audio covers 30.0 s of the 60.0 s iEEG block" in caplog.text
    with pytest.raises(InputError, match=r"r1_audio.wav: audio covers 30.0 s of the 60.0 s"):
        pack(_cfg(table, tmp_path / "s2", "strict=true", "split.val=0", "split.test=0.3"))


def test_sfreq_differing_within_a_session_is_an_error(tmp_path):
    rows = []
    for i, sfreq in enumerate([256.0, 256.0, 250.0]):
        start = T0 + dt.timedelta(seconds=60 * i)
        ieeg, wav = write_block(tmp_path / "d", f"r{i}", start, sfreq=sfreq, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp_path / "d", rows)
    with pytest.raises(InputError, match=r"r2_ieeg.edf: sfreq 250.0 Hz differs from 256.0 Hz of r0_ieeg.edf"):
        pack(_cfg(table, tmp_path / "s", "split.val=0", "split.test=0"))


def test_flat_channel_dropped_nan_run_excluded(tmp_path):
    rows = []
    for i in range(3):
        start = T0 + dt.timedelta(seconds=60 * i)
        ieeg, wav = write_block(
            tmp_path / "d",
            f"r{i}",
            start,
            flat="LH2" if i == 1 else None,
            nan_span=(30.0, 31.0) if i == 0 else None,
            fmt="fif",
            seed=i,
        )
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp_path / "d", rows)
    out = tmp_path / "s"
    manifest = json.loads(pack(_cfg(table, out, "split.val=0", "split.test=0", "preprocess.montage=none")).read_text())
    sub = manifest["subjects"]["01"]
    assert sub["dropped"]["LH2"].startswith("flat") and "LH2" not in sub["ch_names"]
    first = [s for s in _samples(out) if s["json"]["source"] == "r0_ieeg.fif"]
    covered = [(s["json"]["tmin"], s["json"]["tmin"] + s["brain.npy"].shape[1] / 40) for s in first]
    assert all(t1 <= 30.0 or t0 >= 31.0 for t0, t1 in covered)  # nothing overlaps the NaN run
    assert all(np.isfinite(s["brain.npy"]).all() for s in first)


def test_corrupt_edf_is_skipped_or_raised(recordings, tmp_path, caplog):
    bad = recordings.parent / "sub-01_run-3_ieeg.edf"
    bad.write_bytes(b"0       garbage header" + bytes(300))
    caplog.set_level(logging.WARNING)
    manifest = json.loads(pack(_cfg(recordings, tmp_path / "s", "split.val=0", "split.test=0.3")).read_text())
    assert str(bad) in manifest["skipped"] and "cannot read iEEG file" in manifest["skipped"][str(bad)]
    with pytest.raises(InputError, match="sub-01_run-3_ieeg.edf: cannot read iEEG file"):
        pack(_cfg(recordings, tmp_path / "s2", "strict=true"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty.tsv").write_text("subject\tsession\tieeg\taudio\tstart_time\n")
    assert main(["pack", f"recordings={tmp_path / 'empty.tsv'}", f"out={tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no rows" in err
    table = write_table(tmp_path, [])
    table.write_text(table.read_text() + "01\tday1\tnope.edf\tnope.wav\t2026-03-02T10:00:00\n")
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.edf not found" in err


def test_parallel_blocks_give_the_same_shards(recordings, tmp_path):
    one = json.loads(pack(_cfg(recordings, tmp_path / "one")).read_text())
    two = json.loads(pack(_cfg(recordings, tmp_path / "two", "n_jobs=2")).read_text())
    digests = [[s["sha256"] for sp in ("train", "val", "test") for s in m["shards"][sp]] for m in (one, two)]
    assert digests[0] == digests[1]


def test_rerun_after_a_crash_skips_finished_blocks(recordings, tmp_path, monkeypatch):
    ref = json.loads(pack(_cfg(recordings, tmp_path / "ref")).read_text())
    real = work_mod.process_block
    calls = []

    def crashing(job, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while packing the third block
        calls.append(job.block.ieeg.name)
        return real(job, *args, **kwargs)

    monkeypatch.setattr(work_mod, "process_block", crashing)
    with pytest.raises(KeyboardInterrupt):
        pack(_cfg(recordings, tmp_path / "run"))
    assert len(calls) == 2 and not (tmp_path / "run" / "manifest.json").exists()
    done = list(calls)

    def counting(job, *args, **kwargs):
        calls.append(job.block.ieeg.name)
        return real(job, *args, **kwargs)

    monkeypatch.setattr(work_mod, "process_block", counting)
    run = json.loads(pack(_cfg(recordings, tmp_path / "run")).read_text())
    assert sorted(calls[2:]) == sorted(
        {"sub-01_run-0_ieeg.edf", "sub-01_run-1_ieeg.edf", "sub-01_run-2_ieeg.edf", "sub-01_run-3_ieeg.edf"} - set(done)
    )  # finished blocks not redone
    digests = [[s["sha256"] for sp in ("train", "val", "test") for s in m["shards"][sp]] for m in (ref, run)]
    assert digests[0] == digests[1]


def test_day_and_daytime_follow_the_site_timezone(recordings, tmp_path):
    """The fixture starts at 10:00 UTC: daytime in UTC, 02:00 (night) in Los Angeles; bad names fail early."""
    manifest = json.loads(pack(_cfg(recordings, tmp_path / "la", "timezone=America/Los_Angeles")).read_text())
    meta = _samples(tmp_path / "la")[0]["json"]
    assert meta["daytime"] is False and meta["day"] == 0 and manifest["timezone"] == "America/Los_Angeles"
    assert meta["local_time"].endswith("-08:00") and meta["start_time"].endswith("+00:00")
    assert manifest["splits"]["train"]["daytime_hours"] == 0.0 < manifest["splits"]["train"]["hours"]
    from ieegfm.errors import ConfigError

    with pytest.raises(ConfigError, match="timezone='Mars/Olympus': not an IANA time zone"):
        pack(_cfg(recordings, tmp_path / "bad", "timezone=Mars/Olympus"))
    assert not (tmp_path / "bad").exists()  # nothing written


def test_audio_pool_s_stores_bin_means_that_give_exact_window_means(recordings, tmp_path):
    """audio.pool_s=1: 1/40 of the audio bytes; window targets equal those computed from the frames."""
    import torch

    from ieegfm.data import ShardDataModule, target_of
    from ieegfm.data.plan import EpochPlanner
    from ieegfm.errors import ConfigError

    frames_out, pooled_out = tmp_path / "frames", tmp_path / "pooled"
    pack(_cfg(recordings, frames_out))
    manifest = json.loads(pack(_cfg(recordings, pooled_out, "audio.pool_s=1.0")).read_text())
    assert manifest["audio_sfreq"] == 1.0 and manifest["sfreq"] == 40.0
    frames = {s["__key__"]: s for s in _samples(frames_out)}
    pooled = {s["__key__"]: s for s in _samples(pooled_out)}
    assert frames.keys() == pooled.keys()
    for key, p in pooled.items():
        fa, pa, pb = frames[key]["audio.npy"].astype(float), p["audio.npy"].astype(float), p["brain.npy"]
        n = pb.shape[1]  # chunks are cut to whole 1-s bins
        assert n % 40 == 0 and pa.shape == (fa.shape[0], n // 40)
        np.testing.assert_allclose(pa, fa[:, :n].reshape(fa.shape[0], -1, 40).mean(-1), atol=2e-2)
        assert np.array_equal(frames[key]["brain.npy"][:, :n], pb)
    # evaluation windows: the same windows and (up to float16 rounding) the same mean targets from both stores
    f_val, p_val = (list(ShardDataModule(o, batch_size=64).val_dataloader()) for o in (frames_out, pooled_out))
    assert [k for b in f_val for k in b["key"]] == [k for b in p_val for k in b["key"]]
    for fb, pbatch in zip(f_val, p_val):
        assert pbatch["audio"].shape[-1] == 3  # three 1-s bins per 3-s window
        torch.testing.assert_close(
            target_of(pbatch["audio"], "mean"), target_of(fb["audio"], "mean"), atol=2e-2, rtol=0
        )
    # training: window offsets on the bin grid, pre-pooled targets
    dm = ShardDataModule(pooled_out, batch_size=4, audio_pooling="mean")
    assert dm.audio_step == 40
    batch = next(iter(dm.train_dataloader()))
    assert batch["audio"].shape == (4, 40) and batch["brain"].shape[-1] == 120
    plan = EpochPlanner(
        [e["chunk_lengths"] for e in manifest["shards"]["train"]], dm.urls("train"), 120, 4, 0, dm.audio_step
    ).plan(0, 1, 1)
    assert all(o % 40 == 0 for offsets in plan["offsets"] for o in offsets)
    with pytest.raises(InputError, match="model.pooling=none needs every frame"):
        dm.check_pooling("none")
    with pytest.raises(ConfigError, match=r"audio.pool_s=0.33: expected 0 or a bin"):
        pack(_cfg(recordings, tmp_path / "bad", "audio.pool_s=0.33"))
    assert not (tmp_path / "bad").exists()
