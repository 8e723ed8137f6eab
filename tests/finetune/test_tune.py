"""The learning-rate grid of ``compare``: one grid per condition, chosen on validation, the test split read after."""

import json
from pathlib import Path

import pytest

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.errors import ConfigError
from ieegfm.finetune.tune import GridPoint, check_grid, grid_points

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
FT = [*FAST, "data.batch_size=32", "trainer.val_check_interval=10"]


def test_grid_per_condition():
    lrs, scales = [3e-4, 1e-3], [0.1, 1.0]
    assert grid_points("task_only", lrs, scales) == [GridPoint(3e-4, 1.0), GridPoint(1e-3, 1.0)]  # scratch: 1.0
    assert grid_points("finetuned_frozen", lrs, scales) == [GridPoint(3e-4, None), GridPoint(1e-3, None)]
    assert [p.label for p in grid_points("finetuned_full", lrs, scales)] == [
        "lr0.0003-scale0.1",
        "lr0.0003-scale1",
        "lr0.001-scale0.1",
        "lr0.001-scale1",
    ]
    assert GridPoint(1e-3, None).label == "lr0.001"


@pytest.mark.parametrize(
    "override, message",
    [
        ("lr_grid=[]", "lr_grid=[]: expected distinct positive values"),
        ("lr_grid=[1e-3,1e-3]", "expected distinct positive values"),
        ("encoder_lr_scales=[0.1,-1]", "encoder_lr_scales=[0.1, -1.0]: expected distinct positive"),
        ("select_seeds=0", "select_seeds=0: expected at least 1"),
    ],
)
def test_bad_grid_is_a_config_error(override, message):
    cfg = load_config("compare", overrides=["ckpt=c", "shards=s", override])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_grid(cfg)


def test_compare_chooses_on_validation_and_reads_test_only_for_the_chosen_runs(patient, tmp_path, monkeypatch):
    """Every grid point is trained before any test window is scored; only the chosen point's runs are scored."""
    import ieegfm.finetune.audio_run as audio_run
    import ieegfm.finetune.run as run_module

    events = []
    real_score = audio_run.score_split
    real_finetune = run_module.finetune

    def score(ckpt, shards, split, *args, **kwargs):
        events.append(("score", split, str(ckpt)))
        return real_score(ckpt, shards, split, *args, **kwargs)

    def train(cfg, score_test=True):
        events.append(("train", cfg.optim.lr, cfg.seed))
        return real_finetune(cfg, score_test=score_test)

    monkeypatch.setattr(audio_run, "score_split", score)
    monkeypatch.setattr("ieegfm.finetune.tune.finetune", train)
    out = tmp_path / "cmp"
    args = ["compare", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={out}", "seeds=2"]
    grid = ["lr_grid=[3e-4,3e-3]", "conditions=[task_only]", "trainer.max_steps=40"]
    assert main([*args, *grid, *FT]) == 0
    c = json.loads((out / "comparison.json").read_text())
    (row,) = c["rows"]
    sel = row["selection"]
    assert c["lr_grid"] == [3e-4, 3e-3] and c["select_seeds"] == 1
    assert [(g["lr"], g["encoder_lr_scale"]) for g in sel["grid"]] == [(3e-4, 1.0), (3e-3, 1.0)]
    best = min(sel["grid"], key=lambda g: g["val_mean_relative_rank"])
    assert best["chosen"] and sum(g["chosen"] for g in sel["grid"]) == 1
    assert (row["lr"], row["encoder_lr_scale"]) == (best["lr"], 1.0) == tuple(sel["chosen"].values())
    for g in sel["grid"]:  # the selection value is the run's own best validation rank
        label = f"lr{g['lr']:g}-scale1"
        m = json.loads((out / "runs" / "task_only" / label / "seed0" / "metrics.json").read_text())
        assert m["best_val_mean_relative_rank"] == g["val_mean_relative_rank"] == g["val_by_seed"][0]
        assert ("test" in m) == g["chosen"]  # the unchosen point's test split was never scored
    # order: both grid points trained (seed 0), then the chosen point's seed 1; test scored only after that
    trains = [e for e in events if e[0] == "train"]
    assert trains == [("train", 3e-4, 0), ("train", 3e-3, 0), ("train", best["lr"], 1)]
    tests = [i for i, e in enumerate(events) if e[:2] == ("score", "test")]
    assert len(tests) == 2 and min(tests) > max(i for i, e in enumerate(events) if e[0] == "train")
    chosen_dir = out / "runs" / "task_only" / f"lr{best['lr']:g}-scale1"
    assert all(str(chosen_dir) in events[i][2] for i in tests)
    assert [s["run"] for s in row["seeds"]] == [str(chosen_dir / "seed0"), str(chosen_dir / "seed1")]
    card = json.loads((chosen_dir / "seed1" / "card.json").read_text())
    assert card["lr"] == best["lr"] and card["encoder_lr_scale"] == 1.0 and card["init"] == "scratch"
    assert card["comparison"]["selection"]["chosen"] == sel["chosen"]
    assert "Learning rate chosen on validation" in (chosen_dir / "seed1" / "card.md").read_text()
    md = (out / "comparison.md").read_text()
    assert f"| task_only | {best['lr']:g} | 1 |" in md and "val mean relative rank" in md
    assert sel["lr_at_grid_edge"] == ("lowest" if best["lr"] == 3e-4 else "highest")  # a 2-point grid: an end
    assert f"Chosen lr at an end of lr_grid (the best may lie beyond it): task_only ({sel['lr_at_grid_edge']})" in md
    # a rerun reuses every run and reads test only for what is not scored yet (nothing)
    events.clear()
    assert main([*args, *grid, *FT]) == 0
    assert not [e for e in events if e[0] == "train"] and not [e for e in events if e[:2] == ("score", "test")]


@pytest.mark.slow
def test_compare_task_only_is_as_good_as_a_manual_sweep_of_the_grid(patient, tmp_path):
    """On the simulator: compare's task-only row (chosen on validation) is no worse than the best task-only run of a
    manual sweep over the same grid, scored on test (within the per-window noise of the paired difference)."""
    import numpy as np

    lrs = [3e-4, 1e-3, 3e-3]
    steps = ["trainer.max_steps=120", *FT]
    base = [f"ckpt={patient['ckpt']}", f"shards={patient['task']}"]
    out = tmp_path / "cmp"
    grid = f"lr_grid=[{','.join(map(str, lrs))}]"
    assert main(["compare", *base, f"out={out}", "seeds=1", "conditions=[task_only]", grid, *steps]) == 0
    (row,) = json.loads((out / "comparison.json").read_text())["rows"]
    manual = {}
    for lr in lrs:
        run = tmp_path / f"manual-{lr:g}"
        scratch = ["init=scratch", "freeze=none", f"optim.lr={lr}", "optim.encoder_lr_scale=1.0", "seed=0"]
        assert main(["finetune", "head=linear", *base, f"out={run}", *scratch, *steps]) == 0
        manual[lr] = json.loads((run / "metrics.json").read_text())
    test_rank = {lr: m["test"]["mean_relative_rank"] for lr, m in manual.items()}
    best = min(test_rank, key=test_rank.get)
    ours = json.loads((Path(row["seeds"][0]["run"]) / "metrics.json").read_text())["per_window"]["relative_rank"]
    ours = np.asarray(ours)
    theirs = np.asarray(manual[best]["per_window"]["relative_rank"])
    diff = ours - theirs
    noise = 2 * diff.std(ddof=1) / np.sqrt(len(diff)) if diff.any() else 0.0
    assert row["mean_relative_rank"] <= test_rank[best] + noise + 1e-9, (row["mean_relative_rank"], test_rank, noise)
    # the row is the manual run at the chosen learning rate (same seed, same recipe: scratch at the full rate)
    assert row["mean_relative_rank"] == pytest.approx(test_rank[row["lr"]], abs=1e-6)
    assert row["mean_relative_rank"] < 0.4  # and it learned
