import datetime as dt

import pytest

from ieegfm.errors import ConfigError
from ieegfm.shards.split import BlockSpan, assign_splits, guard_trims

T0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.timezone.utc)


def spans(n, dur=1800.0, subject="s1"):
    return [BlockSpan(f"{subject}_b{i}", subject, T0 + dt.timedelta(seconds=i * dur), dur) for i in range(n)]


def test_assign_spreads_eval_blocks_and_keeps_train_majority():
    s = spans(8)
    split = assign_splits(s, 0.15, 0.15)
    roles = [split[b.name] for b in s]
    assert roles.count("test") == 1 and roles.count("val") == 1 and roles.count("train") == 6
    assert roles.index("test") < 4 <= roles.index("val")  # one per day half


def test_too_few_blocks_is_a_config_error():
    with pytest.raises(ConfigError, match="subject 's1' has 2 block"):
        assign_splits(spans(2), 0.15, 0.15)
    assert set(assign_splits(spans(1), 0, 0).values()) == {"train"}


def test_guard_gap_cut_on_the_evaluation_side_of_touching_blocks():
    s = spans(8)
    split = assign_splits(s, 0.15, 0.15)
    trims = guard_trims(s, split, guard_s=33.0)
    for a, b in zip(s[:-1], s[1:]):
        if split[a.name] != split[b.name]:
            gap = (b.start - a.start).total_seconds() - a.duration + trims[a.name][1] + trims[b.name][0]
            assert gap >= 33.0
            evaluation = b if split[b.name] != "train" else a
            assert sum(trims[evaluation.name]) > 0
    assert all(trims[b.name] == (0.0, 0.0) for b in s if split[b.name] == "train")


def test_no_guard_needed_when_blocks_far_apart():
    s = [BlockSpan(f"b{i}", "s", T0 + dt.timedelta(hours=3 * i), 1800.0) for i in range(4)]
    split = assign_splits(s, 0.25, 0.25)
    assert all(v == (0.0, 0.0) for v in guard_trims(s, split, 33.0).values())
