"""Balanced epochs across subjects (issue 19, item 3): data.subject_alpha."""

import datetime as dt
from collections import Counter

import numpy as np
import pytest
import torch
from recording_fixtures import NEURAL, T0, as_rank, write_block, write_table

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.data import ShardDataModule
from ieegfm.data.balance import subject_quotas
from ieegfm.data.plan import EpochPlanner
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.recordings import read_recordings
from ieegfm.shards.cohort import write_cohort
from ieegfm.shards.pack import only_subjects


def test_quotas_follow_hours_to_the_alpha_and_never_repeat_a_window():
    n = {"big": 100, "small": 25}
    assert subject_quotas(n, 1.0) == n  # proportional: every window
    assert subject_quotas(n, 0.0) == {"big": 25, "small": 25}  # uniform: the small subject binds
    # alpha 0.5: shares 10:5, the small subject all of its 25 windows, the big one 50 of its 100
    assert subject_quotas(n, 0.5) == {"big": 50, "small": 25}
    assert subject_quotas({"only": 7}, 0.0) == {"only": 7}


def test_the_plan_keeps_each_subjects_quota_and_redraws_it_every_epoch():
    lengths = [[400] * 10, [400] * 10, [400] * 5]  # windows of 100 samples: 4 (or 3) per chunk
    subjects = [["a"] * 10, ["a"] * 10, ["b"] * 5]
    urls = ["a0", "a1", "b0"]
    plain = EpochPlanner(lengths, urls, 100, 8, seed=3)
    same = EpochPlanner(lengths, urls, 100, 8, seed=3, subjects=subjects, alpha=1.0)
    p, q = plain.plan(0, 2, 1), same.plan(0, 2, 1)
    assert all(np.array_equal(x, y) for x, y in zip(p["counts"], q["counts"])) and p["bounds"] == q["bounds"]
    balanced = EpochPlanner(lengths, urls, 100, 8, seed=3, subjects=subjects, alpha=0.5)
    kept = []
    for epoch in (0, 1):
        plan = balanced.plan(epoch, 2, 1)
        per = plan["per_subject"]
        want = subject_quotas({s: v["windows"] for s, v in per.items()}, 0.5)
        assert {s: v["per_epoch"] for s, v in per.items()} == want and want["a"] < per["a"]["windows"]
        got = {"a": int(plan["counts"][0].sum() + plan["counts"][1].sum()), "b": int(plan["counts"][2].sum())}
        assert got == want and plan["n_windows"] == sum(want.values())
        full = [c for c in EpochPlanner(lengths, urls, 100, 8, seed=3).plan(epoch, 2, 1)["counts"]]
        assert all((c <= f).all() for c, f in zip(plan["counts"], full))  # never more than the chunk holds
        kept.append(np.concatenate(plan["counts"][:2]) > 0)
    assert not np.array_equal(*kept)  # another subset of the big subject each epoch


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """Subject 01: 8 blocks of 90 s; subject 02: 3 blocks, one contact flat (dropped: a smaller implant). One pack
    of both, and one pack each."""
    tmp = tmp_path_factory.mktemp("balance")
    rows = []
    for subject, n in (("01", 8), ("02", 3)):
        for i in range(n):
            start = T0 + dt.timedelta(seconds=90 * i)
            flat = NEURAL[0] if subject == "02" else None
            ieeg, wav = write_block(
                tmp / "d", f"s{subject}r{i}", start, duration=90.0, seed=10 * int(subject) + i, flat=flat
            )
            rows.append((subject, "day1", ieeg, wav, start))
    table = write_table(tmp / "d", rows)
    common = [f"recordings={table}", "split.val=0.2", "split.test=0.2", "chunk_s=15", "samples_per_shard=3"]
    assert main(["pack", *common, f"out={tmp / 'both'}"]) == 0
    for s in ("01", "02"):
        assert main(["pack", *common, f"subjects=['{s}']", f"out={tmp / s}"]) == 0
    return {
        "both": tmp / "both",
        "cohort": write_cohort([tmp / "01", tmp / "02"], tmp / "cohort"),
        "table": table,
    }


@pytest.mark.parametrize("which", ["both", "cohort"])
def test_balanced_epochs_across_ranks_see_each_window_at_most_once(two_subjects, monkeypatch, which):
    world, workers = 2, 2
    for alpha in (1.0, 0.0):
        keys = []
        for rank in range(world):
            as_rank(monkeypatch, rank, world)
            dm = ShardDataModule(two_subjects[which], batch_size=4, num_workers=workers, seed=1, subject_alpha=alpha)
            dm._world = lambda: world
            loader = dm.train_dataloader()
            got = list(loader)
            assert len(got) == loader.num_batches
            keys += [(k, int(s)) for b in got for k, s in zip(b["key"], b["subject"])]
        names = [k for k, _ in keys]
        assert len(names) == len(set(names))  # at most once, across ranks and workers
        index = {s: i for s, i in dm.manifest.subject_index().items()}
        seen = Counter(s for _, s in keys)
        per = dm.subject_plan
        assert {s: seen[index[s]] for s in per} == {s: v["per_epoch"] for s, v in per.items()}
        assert per["01"]["windows"] > 2 * per["02"]["windows"]  # more blocks
        if alpha == 1.0:  # proportional: every window
            assert all(v["per_epoch"] == v["windows"] for v in per.values())
        else:  # uniform: as many windows of each
            assert per["01"]["per_epoch"] == per["02"]["per_epoch"] == per["02"]["windows"]


def test_grouped_batches_hold_one_subject_each_with_its_own_channels(two_subjects, monkeypatch):
    """data.group_by_subject: every batch but the last few of a stream is one subject's, unpadded; the plan's
    windows (each exactly once), batch count and sizes are those of the ungrouped loader, on every rank."""
    world, workers = 2, 2
    for alpha in (1.0, 0.0):
        plain, grouped = [], []
        for rank in range(world):
            as_rank(monkeypatch, rank, world)
            for out, group in ((plain, False), (grouped, True)):
                dm = ShardDataModule(
                    two_subjects["cohort"], batch_size=4, num_workers=workers, seed=1, subject_alpha=alpha,
                    group_by_subject=group,
                )  # fmt: skip
                dm._world = lambda: world
                loader = dm.train_dataloader()
                got = list(loader)
                assert len(got) == loader.num_batches
                out.append(got)
        chans = {i: len(dm.manifest.subjects[s].ch_names) for s, i in dm.manifest.subject_index().items()}
        assert chans[1] < chans[0] == dm.n_chans  # subject 02 lost its flat contact
        for a, b in zip(plain, grouped):  # per rank: the same number and sizes of batches
            assert [len(x["key"]) for x in a] == [len(x["key"]) for x in b]
        keys = lambda runs: sorted(k for got in runs for x in got for k in x["key"])  # noqa: E731
        assert keys(grouped) == keys(plain) and len(keys(grouped)) == len(set(keys(grouped)))
        single = [x for got in grouped for x in got if len(set(x["subject"].tolist())) == 1]
        mixed = sum(len(got) for got in grouped) - len(single)
        assert mixed <= world * workers * (len(chans) - 1)  # only a stream's last batches may mix
        assert all(x["brain"].shape[1] == chans[int(x["subject"][0])] for x in single)
        assert any(x["brain"].shape[1] < dm.n_chans for x in single)
        assert all(x["brain"].is_contiguous() for x in single)
        # the same windows as the padded loader's, minus the padding
        lookup = {
            k: (x["brain"][j], int(x["subject"][j])) for got in plain for x in got for j, k in enumerate(x["key"])
        }
        for x in single[:5]:
            for j, k in enumerate(x["key"]):
                ref, s = lookup[k]
                assert torch.equal(ref[: chans[s]], x["brain"][j]) and not ref[chans[s] :].any()


def test_a_bad_alpha_is_a_one_line_error(two_subjects, tmp_path, capsys):
    # (and a BIDS label such as 01 stays '01' on the command line, not the number 1; a caller that lost the zero
    # gets a hint)
    cfg = load_config("pack", overrides=[f"recordings={two_subjects['table']}", "subjects=[01,02]", "out=x"])
    assert list(cfg.subjects) == ["01", "02"] and load_config("simulate", overrides=["subject=007"]).subject == "007"
    blocks = read_recordings(two_subjects["table"])
    with pytest.raises(InputError, match=r"it holds \['01', '02'\] \(quote zero-padded labels: subjects=\['01'\]\)"):
        only_subjects(blocks, ["1"], two_subjects["table"])
    with pytest.raises(ConfigError, match="data.subject_alpha=-1"):
        ShardDataModule(two_subjects["both"], subject_alpha=-1)
    assert main(["pretrain", f"shards={two_subjects['both']}", f"out={tmp_path / 'p'}", "data.subject_alpha=-0.5"]) == 2
    assert "expected a number >= 0" in capsys.readouterr().err and not (tmp_path / "p").exists()
