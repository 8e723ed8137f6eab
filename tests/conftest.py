"""Shared fixtures (helpers in recording_fixtures.py)."""

import datetime as dt
import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from recording_fixtures import FAST, T0, TINY_MODEL, write_block, write_table

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.simulate import simulate


@pytest.fixture
def recordings(tmp_path) -> Path:
    """Four consecutive 60-s blocks of one subject, 256 Hz."""
    rows = []
    for i in range(4):
        start = T0 + dt.timedelta(seconds=60 * i)
        ieeg, wav = write_block(tmp_path / "data", f"sub-01_run-{i}", start, seed=i)
        rows.append(("01", "day1", ieeg, wav, start))
    return write_table(tmp_path / "data", rows)


@pytest.fixture
def caplog_info(caplog):
    caplog.set_level(logging.INFO)
    return caplog


@pytest.fixture(scope="session")
def patient(tmp_path_factory):
    """A small simulated patient: ambient shards (6 blocks of 5 min), a tiny pretrained checkpoint, and task shards
    (4 blocks of 2 min) packed on its channels."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("patient")
    over = ["hours=0.5", "days=1", "block_minutes=5", "task_minutes=8", "task_blocks=4", "seed=0"]
    simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over]))
    assert main(["pack", f"recordings={root / 'sim' / 'recordings.tsv'}", f"out={root / 'amb'}"]) == 0
    pretrain = [f"shards={root / 'amb'}", f"out={root / 'pre'}", "trainer.max_steps=200", "data.batch_size=32"]
    assert main(["pretrain", *pretrain, "optim.lr=2e-3", "trainer.val_check_interval=100", *TINY_MODEL, *FAST]) == 0
    task = ["pack", f"recordings={root / 'sim' / 'recordings_task.tsv'}", f"out={root / 'task'}"]
    assert main([*task, f"channels_from={root / 'amb'}", "split.val=0.25", "split.test=0.25"]) == 0
    return {"root": root, "ckpt": root / "pre" / "checkpoints" / "last.ckpt", "task": root / "task"}


def _tool(name: str):
    """``tools/<name>.py`` as a module (the studies, run small by the tests)."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope="session")
def cohort_tool():
    """``tools/cohort_study.py`` as a module (the cross-patient studies, run small by the tests)."""
    return _tool("cohort_study")


@pytest.fixture(scope="session")
def bands_tool():
    """``tools/bands_study.py`` as a module (lfp vs high gamma where the truth is known)."""
    return _tool("bands_study")
