import numpy as np
import webdataset as wds

from ieegfm.shards.writer import ShardWriter


def _write(folder):
    w = ShardWriter(folder, "train", samples_per_shard=2)
    rng = np.random.default_rng(0)
    for i in range(5):
        w.write(
            f"k{i}",
            {
                "brain.npy": rng.standard_normal((3, 10)).astype(np.float16),
                "audio.npy": np.full((2, 10), i, np.float16),
                "json": {"i": i},
            },
            n_windows=1,
        )
    return w.close()


def test_rotation_names_and_plain_webdataset_decode(tmp_path):
    shards = _write(tmp_path)
    assert [s["name"] for s in shards] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert [s["n_samples"] for s in shards] == [2, 2, 1]
    assert not list(tmp_path.glob("*.tmp"))
    samples = list(wds.WebDataset([str(tmp_path / s["name"]) for s in shards], shardshuffle=False).decode())
    assert [s["json"]["i"] for s in samples] == list(range(5))
    assert samples[3]["audio.npy"].dtype == np.float16 and samples[3]["audio.npy"][0, 0] == 3
    assert samples[0]["brain.npy"].shape == (3, 10)


def test_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert [s["sha256"] for s in _write(a)] == [s["sha256"] for s in _write(b)]


def test_unfinished_shard_keeps_temporary_name(tmp_path):
    w = ShardWriter(tmp_path, "val", samples_per_shard=10)
    w.write("k0", {"json": {"i": 0}})
    assert [p.name for p in tmp_path.iterdir()] == ["val-000000.tar.tmp"]  # interrupted here: nothing looks done
