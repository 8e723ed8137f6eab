"""Drift-robust scaling: robust scaling fitted per recording day (or block) divides out a day's gain change."""

import datetime as dt
import json

import numpy as np
import pytest
from recording_fixtures import T0, write_block, write_table

from ieegfm.__main__ import main
from ieegfm.data.tar import decode_sample, tar_samples


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Three 60-s blocks on each of two days; the second day's amplifier gain is 3x."""
    folder = tmp_path_factory.mktemp("days") / "data"
    rows = []
    for day in range(2):
        for i in range(3):
            start = T0 + dt.timedelta(days=day, seconds=60 * i)
            ieeg, wav = write_block(folder, f"sub-01_d{day}_run-{i}", start, seed=3 * day + i, gain=1.0 + 2.0 * day)
            rows.append(("01", f"day{day + 1}", ieeg, wav, start))
    return write_table(folder, rows)


def _iqr_by_day(shards):
    m = json.loads((shards / "manifest.json").read_text())
    by_day: dict[int, list] = {}
    for entries in m["shards"].values():
        for e in entries:
            for s in tar_samples(iter([{"url": str(shards / e["name"])}])):
                s = decode_sample(s)
                by_day.setdefault(s["meta"]["day"], []).append(s["brain"].astype(np.float64))
    iqr = {d: np.subtract(*np.percentile(np.concatenate(v, axis=1), [75, 25], axis=1)) for d, v in by_day.items()}
    return iqr, m


@pytest.mark.parametrize("scale_by", ["train", "day", "block"])
def test_scaling_per_day_divides_out_the_gain_drift(two_days, tmp_path, scale_by):
    out = tmp_path / scale_by
    assert main(["pack", f"recordings={two_days}", f"out={out}", f"preprocess.scale_by={scale_by}"]) == 0
    iqr, manifest = _iqr_by_day(out)
    ratio = np.median(iqr[1] / iqr[0])
    assert manifest["scaling"]["by"] == scale_by
    if scale_by == "train":
        assert 2.5 < ratio < 3.5  # the gain change survives a scaling fitted once
        assert manifest["scaling"]["scalers"] == {}
    else:
        assert 0.85 < ratio < 1.15  # divided out
        assert np.all(np.abs(np.median(iqr[0]) - 1) < 0.2)  # IQR units within the unit
        units = set(manifest["scaling"]["unit_of_block"].values())
        assert len(units) == (2 if scale_by == "day" else 6) and set(manifest["scaling"]["scalers"]) == units
