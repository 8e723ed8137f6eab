"""Shared fixtures (helpers in recording_fixtures.py)."""

import datetime as dt
import logging
from pathlib import Path

import pytest
from recording_fixtures import T0, write_block, write_table


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
