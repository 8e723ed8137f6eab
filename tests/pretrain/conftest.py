"""Shards for the pretraining tests: six 2-min blocks whose first shaft follows the audio envelope."""

import pytest
from recording_fixtures import pack_consecutive_blocks

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
    return pack_consecutive_blocks(
        tmp_path_factory.mktemp("pt"), 6, 120.0, "split.val=0.2", "split.test=0.2", "chunk_s=30", "audio.n_mels=8"
    )


@pytest.fixture
def tiny():
    """Overrides for a tiny, fast CPU model."""
    return list(TINY_OVERRIDES)
