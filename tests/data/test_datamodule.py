import pytest
import torch
from recording_fixtures import pack_consecutive_blocks

from ieegfm.data import ShardDataModule
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
    n_chunks = sum(len(s["chunk_lengths"]) for s in dm.manifest["shards"]["train"])
    first = _keys(loader)
    assert len(first) == 4 * loader.num_batches
    assert loader.num_batches >= (dm.n_windows("train") - n_chunks) // 4 - 1  # random offsets cost <= 1 per chunk
    again = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=3)
    assert _keys(again.train_dataloader()) == first  # same seed, same epoch -> same order
    dm.set_epoch(1)
    second = _keys(dm.train_dataloader())
    assert second != first and len(second) == len(first)
    other = ShardDataModule(shards, batch_size=4, shuffle_buffer=50, seed=4)
    assert _keys(other.train_dataloader()) != first


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
    keys = _keys(loader)
    assert len(keys) == 4 * loader.num_batches  # the epoch keeps its planned length (ranks stay in step)
    assert dm.corrupt.count >= 1


def test_npy_decoder_matches_numpy():
    import io

    import numpy as np

    from ieegfm.data.pipeline import npy_from_bytes
    from ieegfm.shards.writer import npy_bytes

    for arr in (np.arange(24, dtype=np.float16).reshape(2, 3, 4), np.ones((5,), np.float32), np.zeros((0, 3))):
        out = npy_from_bytes(npy_bytes(arr))
        assert out.dtype == arr.dtype and out.shape == arr.shape and np.array_equal(out, arr)
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    buf = io.BytesIO()
    np.save(buf, fortran)
    assert np.array_equal(npy_from_bytes(buf.getvalue()), fortran)  # falls back to numpy.load


def test_epoch_mode_uses_every_window_at_most_once_across_ranks(shards, monkeypatch):
    """Two ranks (simulated) x two DataLoader workers: disjoint windows, equal batch counts, almost all used."""
    import ieegfm.data.pipeline as pipeline

    seen = {}
    for rank in (0, 1):

        def fake_rank(rank=rank):
            info = torch.utils.data.get_worker_info()
            return (rank, 2, info.id, info.num_workers) if info is not None else (rank, 2, 0, 1)

        monkeypatch.setattr(pipeline, "rank_and_worker", fake_rank)
        dm = ShardDataModule(shards, batch_size=4, num_workers=2, seed=5)
        dm._world = lambda: 2
        seen[rank] = _keys(dm.train_dataloader())
    planner = pipeline.EpochPlanner(dm.manifest["shards"]["train"], dm.urls("train"), dm.window_n, 4, 5)
    plan = planner.plan(0, 2, 2)
    total = sum(
        sum((n - o) // dm.window_n for n, o in zip(s["chunk_lengths"], offs) if n >= dm.window_n)
        for s, offs in zip(dm.manifest["shards"]["train"], plan["offsets"])
    )
    keys = seen[0] + seen[1]
    assert len(keys) == len(set(keys))  # no window twice in the epoch, across ranks and workers
    assert len(seen[0]) == len(seen[1]) > 0  # the same number of batches on each rank
    biggest_shard = max(sum(n // dm.window_n for n in s["chunk_lengths"]) for s in dm.manifest["shards"]["train"])
    assert total - len(keys) <= 2 * 2 * 4 + biggest_shard  # left out: incomplete batches + rank balancing
