import pytest
import torch
from recording_fixtures import as_rank, pack_consecutive_blocks

from ieegfm.data import ShardDataModule
from ieegfm.data.tar import decode_sample, tar_samples
from ieegfm.errors import InputError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return pack_consecutive_blocks(
        tmp_path_factory.mktemp("dm"), 5, 90.0, "split.val=0.2", "split.test=0.2", "chunk_s=15", "samples_per_shard=3"
    )


def _keys(loader):
    return [k for batch in loader for k in batch["key"]]


def test_eval_windows_fixed_nonoverlapping_and_counted(shards):
    dm = ShardDataModule(shards, batch_size=7)
    batches = list(dm.val_dataloader())
    assert batches[0]["brain"].shape == (7, 6, 120) and batches[0]["audio"].shape == (7, 40, 120)
    assert batches[0]["brain"].dtype == torch.float16 and batches[0]["subject"].tolist() == [0] * 7
    keys = _keys(dm.val_dataloader())
    assert len(keys) == len(set(keys)) == dm.n_windows("val")
    assert keys == _keys(dm.val_dataloader())  # same windows every time


def test_train_epochs_have_equal_length_and_seeded_shuffles(shards):
    dm = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=3)
    loader = dm.train_dataloader()
    n_chunks = sum(len(s.chunk_lengths) for s in dm.manifest.entries("train"))
    first = _keys(loader)
    n_planned = len(first)
    assert loader.num_batches == len(list(dm.train_dataloader())) == -(-n_planned // 4)
    assert n_planned >= dm.n_windows("train") - n_chunks  # random offsets cost <= 1 window per chunk
    again = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=3)
    assert _keys(again.train_dataloader()) == first  # same seed, same epoch -> same order
    dm.set_epoch(1)
    second = _keys(dm.train_dataloader())
    assert second != first and len(second) == len(first)
    other = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=4)
    assert _keys(other.train_dataloader()) != first


def test_train_windows_carry_their_chunks_fields(shards):
    """Each training window's tmin, key, block, subject and day name the chunk samples its brain and audio hold."""
    dm = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=3)
    chunks = {}
    for url in dm.urls("train"):
        for sample in tar_samples(iter([{"url": url}])):
            c = decode_sample(sample)
            chunks[c["__key__"]] = c
    n = 0
    for batch in dm.train_dataloader():
        for i, key in enumerate(batch["key"]):
            chunk_key, _, index = key.rpartition("/")
            c, meta = chunks[chunk_key], chunks[chunk_key]["meta"]
            lo = round((batch["tmin"][i].item() - meta["tmin"]) * meta["sfreq"])
            assert 0 <= lo - int(index) * 120 < 120  # the chunk's window offset, then whole windows
            assert torch.equal(batch["brain"][i, : c["brain"].shape[0]], torch.from_numpy(c["brain"][:, lo : lo + 120]))
            assert torch.equal(batch["audio"][i], torch.from_numpy(c["audio"][:, lo : lo + 120]))
            assert batch["block"][i] == meta["block"] and batch["day"][i].item() == meta["day"]
            assert batch["subject"][i].item() == dm.subjects[meta["subject"]]
            n += 1
    assert n > 0


def test_resampled_mode_gives_requested_epoch_length(shards):
    dm = ShardDataModule(shards, batch_size=4, resampled=True, samples_per_epoch=40)
    assert len(_keys(dm.train_dataloader())) == 40


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="no manifest.json"):
        ShardDataModule(tmp_path)


def test_corrupt_shard_is_skipped_and_counted(shards, tmp_path):
    import shutil

    copy = tmp_path / "s"
    shutil.copytree(shards, copy)
    victim = sorted(copy.glob("train-*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[:700] + b"\0garbage" * 50)  # truncated mid-member
    dm = ShardDataModule(copy, batch_size=4)
    loader = dm.train_dataloader()
    assert len(list(loader)) == loader.num_batches  # the epoch keeps its planned length (ranks stay in step)
    assert dm.corrupt.shards == [str(victim)] and dm.corrupt.samples == 0


def test_npy_decoder_matches_numpy():
    import io

    import numpy as np

    from ieegfm.data.tar import npy_from_bytes
    from ieegfm.shards.writer import npy_bytes

    for arr in (np.arange(24, dtype=np.float16).reshape(2, 3, 4), np.ones((5,), np.float32), np.zeros((0, 3))):
        out = npy_from_bytes(npy_bytes(arr))
        assert out.dtype == arr.dtype and out.shape == arr.shape and np.array_equal(out, arr)
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    buf = io.BytesIO()
    np.save(buf, fortran)
    assert np.array_equal(npy_from_bytes(buf.getvalue()), fortran)  # falls back to numpy.load


def _planned_windows(dm, plan):
    """Every window of an epoch plan, named as the loader names them (``<chunk key>/<index>``)."""
    import tarfile

    names = set()
    for url, counts in zip(dm.urls("train"), plan["counts"]):
        with tarfile.open(url) as tar:
            keys = list(dict.fromkeys(m.name.partition(".")[0] for m in tar if m.isfile()))
        assert len(keys) == len(counts)
        names |= {f"{key}/{i}" for key, c in zip(keys, counts) for i in range(c)}
    return names


@pytest.mark.parametrize("world, workers", [(2, 2), (4, 2)])
def test_epoch_mode_uses_every_window_exactly_once_across_ranks(shards, monkeypatch, world, workers):
    """Simulated ranks x real DataLoader workers: every window of the epoch once, equal batch counts per rank.

    (4, 2) gives 8 streams for 6 training shards (fewer shards than ranks x workers).
    """
    import ieegfm.data.plan as plan

    seen, batches = {}, {}
    for epoch in (0, 1):
        for rank in range(world):
            as_rank(monkeypatch, rank, world)
            dm = ShardDataModule(shards, batch_size=4, num_workers=workers, shuffle_buffer=20, seed=5)
            dm._world = lambda: world
            dm.set_epoch(epoch)
            loader = dm.train_dataloader()
            got = list(loader)
            assert len(got) == loader.num_batches  # the length Lightning is told
            batches[rank] = len(got)
            seen[epoch, rank] = [k for b in got for k in b["key"]]
            assert all(len(b["key"]) == len(b["brain"]) == len(b["audio"]) > 0 for b in got)
        assert len(set(batches.values())) == 1  # the same number of batches on every rank
        planner = plan.EpochPlanner(
            [e.chunk_lengths for e in dm.manifest.entries("train")], dm.urls("train"), dm.window_n, 4, 5
        )
        planned = _planned_windows(dm, planner.plan(epoch, world, workers))
        keys = [k for rank in range(world) for k in seen[epoch, rank]]
        assert len(keys) == len(set(keys)) == len(planned)  # counted: none twice, none left out
        assert set(keys) == planned
    assert seen[0, 0] != seen[1, 0]  # reshuffled every epoch


def test_epoch_plan_invariants():
    """Plans without data: windows split exactly, equal batches per rank, full batches first."""
    import numpy as np

    from ieegfm.data.plan import EpochPlanner, batch_sizes

    assert batch_sizes(10, 3, 4) == [4, 4, 2] and batch_sizes(12, 3, 4) == [4] * 3 and batch_sizes(6, 3, 4) == [4, 1, 1]
    with pytest.raises(ValueError):
        batch_sizes(13, 3, 4)
    rng = np.random.default_rng(0)
    for _ in range(40):
        shards = [rng.integers(0, 1300, size=rng.integers(1, 6)).tolist() for _ in range(7)]
        world, workers, size = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 9))
        plan = EpochPlanner(shards, [f"s{i}" for i in range(7)], 120, size, 1).plan(3, world, workers)
        if plan["batches"] == 0:
            assert plan["n_windows"] < world or (size == 1 and plan["n_windows"] % world)
            continue
        per_rank = [sum(plan["quota"][(r, k)] for k in range(workers)) for r in range(world)]
        assert per_rank == [plan["batches"]] * world
        taken = {}
        for stream in plan["bounds"]:
            items = EpochPlanner.stream(plan, *stream)
            assert sum(b - a for it in items for a, b in it["takes"]) == sum(plan["sizes"][stream])
            assert all(0 < s <= size for s in plan["sizes"][stream])
            for it in items:
                for c, (a, b) in enumerate(it["takes"]):
                    for j in range(a, b):
                        assert (it["shard"], c, j) not in taken
                        taken[it["shard"], c, j] = stream
        expected = {
            (i, c, j) for i, counts in enumerate(plan["counts"]) for c, n in enumerate(counts) for j in range(n)
        }
        assert set(taken) == expected and len(taken) == plan["n_windows"]


def test_audio_pooling_mean_gives_the_frames_time_average(shards):
    """Pre-pooled training audio: the same windows, in the same order, with audio = mean of the frames."""
    import numpy as np

    frames = list(ShardDataModule(shards, batch_size=4, seed=2).train_dataloader())
    pooled = list(ShardDataModule(shards, batch_size=4, seed=2, audio_pooling="mean").train_dataloader())
    assert len(frames) == len(pooled) > 0
    for f, p in zip(frames, pooled):
        assert list(f["key"]) == list(p["key"]) and torch.equal(f["brain"], p["brain"])
        assert p["audio"].dtype == torch.float32 and p["audio"].shape == f["audio"].shape[:2]
        np.testing.assert_allclose(p["audio"].numpy(), f["audio"].float().mean(-1).numpy(), atol=1e-4)
    from ieegfm.data import target_of

    assert torch.equal(target_of(pooled[0]["audio"], "mean"), pooled[0]["audio"])
    with pytest.raises(ValueError, match="needs audio frames"):
        target_of(pooled[0]["audio"], "none")
    with pytest.raises(ValueError, match="audio_pooling"):
        ShardDataModule(shards, audio_pooling="max")


def test_resampled_stream_with_all_shards_gone_fails_instead_of_spinning(shards, tmp_path):
    import shutil

    copy = tmp_path / "s"
    shutil.copytree(shards, copy)
    dm = ShardDataModule(copy, batch_size=4, resampled=True, samples_per_epoch=40)
    loader = dm.train_dataloader()
    for tar in copy.glob("train-*.tar"):  # gone while training (a network file system unmounted)
        tar.unlink()
    with pytest.raises(InputError, match="50 shards in a row could not be read"):
        list(loader)
    with pytest.raises(InputError, match=r"none of the \d+ train shard\(s\) is readable \(train-000000.tar: missing"):
        dm.train_dataloader()  # gone before: said at once
