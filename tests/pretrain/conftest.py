"""Shards for the pretraining tests: six 2-min blocks whose first shaft follows the audio envelope."""

import datetime as dt

import pytest
from recording_fixtures import T0, write_block, write_table

from ieegfm.config import load_config
from ieegfm.shards.pack import pack

TINY_OVERRIDES = [
    "model.hidden=32",
    "model.depth=2",
    "model.projected_chans=16",
    "data.batch_size=16",
    "optim.lr=3e-3",
    "optim.warmup_steps=5",
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pt")
    rows = []
    for i in range(6):
        start = T0 + dt.timedelta(seconds=120 * i)
        ieeg, wav = write_block(tmp / "d", f"r{i}", start, duration=120, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    table = write_table(tmp / "d", rows)
    pack(
        load_config(
            "pack",
            overrides=[
                f"recordings={table}",
                f"out={tmp / 's'}",
                "split.val=0.2",
                "split.test=0.2",
                "chunk_s=30",
                "audio.n_mels=8",
            ],
        )
    )
    return tmp / "s"


@pytest.fixture
def tiny():
    """Overrides for a tiny, fast CPU model."""
    return list(TINY_OVERRIDES)
