"""Label efficiency (issue 19, item 6): compare task_fractions=[...] -> label_efficiency.json."""

import json

import numpy as np
import pytest

from ieegfm.__main__ import main
from ieegfm.finetune.label_efficiency import bootstrap_saving, saving_from_curve
from ieegfm.io.manifest import read_manifest

FT = [
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "data.batch_size=32",
    "trainer.val_check_interval=10",
]


def test_the_saving_is_read_on_log_fraction_at_the_first_crossing():
    # task-only on all of it: 0.30; the pretrained curve crosses halfway (in rank) between 0.25 and 0.5
    saving, censored = saving_from_curve([0.25, 0.5, 1.0], [0.35, 0.25, 0.2], 0.30)
    assert saving == pytest.approx(1 / np.sqrt(0.25 * 0.5)) and not censored  # 2.83x: the geometric midpoint
    assert saving_from_curve([0.25, 0.5, 1.0], [0.28, 0.25, 0.2], 0.30) == (4.0, True)  # there already: >= 4x
    assert saving_from_curve([0.25, 0.5, 1.0], [0.45, 0.40, 0.35], 0.30) == (None, False)  # never: no saving
    # exactly task-only's curve reaches its own full-data rank at fraction 1: no saving (1x)
    assert saving_from_curve([0.25, 0.5, 1.0], [0.4, 0.35, 0.30], 0.30) == (1.0, False)


def test_the_bootstrap_brackets_a_known_saving_and_counts_failures():
    rng = np.random.default_rng(0)
    n = 400
    labels = np.repeat(["a", "b"], n // 2)
    noise = rng.normal(0, 0.05, size=(3, n))  # 3 seeds
    fractions = [0.25, 0.5, 1.0]
    reference = 0.30 + noise
    better = [r + noise for r in (0.35, 0.25, 0.20)]
    boot = bootstrap_saving(better, reference, fractions, labels, n_boot=400)
    lo, hi = boot["label_saving_ci"]
    assert lo < 1 / np.sqrt(0.125) < hi and lo > 2.0 and hi < 4.0 + 1e-9 and boot["p_reach"] == 1.0
    worse = [np.full((3, n), 0.45) + noise for _ in fractions]
    boot = bootstrap_saving(worse, reference, fractions, labels, n_boot=400)
    assert boot["p_reach"] == 0.0 and boot["label_saving_ci"] == [0.0, 0.0]  # non-reaching resamples count as 0


def test_compare_task_fractions_writes_the_curves_and_the_saving(patient, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={out}", "seeds=1"]
    conditions = "conditions=[task_only,finetuned_frozen]"
    assert main([*args, conditions, "task_fractions=[0.25,0.5]", "lr_grid=[3e-3]", "trainer.max_steps=30", *FT]) == 0
    e = json.loads((out / "label_efficiency.json").read_text())
    assert e["fractions"] == [0.25, 0.5, 1.0] and set(e["conditions"]) == {"task_only", "finetuned_frozen"}
    rows = {r["condition"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    for c, v in e["conditions"].items():  # fraction 1 is the comparison's own rows
        assert len(v["mean_relative_rank"]) == 3 and v["mean_relative_rank"][-1] == rows[c]["mean_relative_rank"]
    assert e["reference"]["mean_relative_rank"] == rows["task_only"]["mean_relative_rank"]
    assert e["n_candidates"] == rows["task_only"]["n_candidates"] and e["best_condition"] == "finetuned_frozen"
    # the point estimate is the curve's own crossing; the CI is a bootstrap with its share reaching
    expected = saving_from_curve(e["kept_fractions"], e["conditions"]["finetuned_frozen"]["mean_relative_rank"],
                                 e["reference"]["mean_relative_rank"])  # fmt: skip
    assert (e["label_saving"], e["censored"]) == expected
    assert len(e["label_saving_ci"]) == 2 and e["n_boot"] == 2000
    # nested subsets of the training split, validation and test untouched
    src = read_manifest(patient["task"])
    views = [read_manifest(out / "fractions" / f"frac{f:g}" / "shards") for f in (0.25, 0.5)]
    hours = [v.splits["train"].hours for v in views]
    assert 0 < hours[0] < hours[1] < src.splits["train"].hours
    assert e["train_hours"]["sim01"] == pytest.approx([*hours, src.splits["train"].hours])
    assert e["kept_fractions"][0] == pytest.approx(hours[0] / src.splits["train"].hours)
    small, large = (
        {(x.name, k) for x in v.entries("train") for k, n in enumerate(x.chunk_lengths) if n} for v in views
    )
    assert small < large
    for v in views:
        for sp in ("val", "test"):
            assert [x.chunk_lengths for x in v.entries(sp)] == [x.chunk_lengths for x in src.entries(sp)]
    assert (out / "label_efficiency.png").stat().st_size > 0
    assert "Label saving of finetuned_frozen" in (out / "comparison.md").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["task_fractions=[0,0.5]"], "task_fractions=[0.0, 0.5]: expected distinct fractions in (0, 1]"),
        (["task_fractions=[0.01]"], "less than its first chunk"),
        (["task_fractions=[0.5]", "conditions=[task_only]"], "expected task_only and at least one of"),
    ],
)
def test_bad_fractions_are_one_line_errors_before_anything_is_written(patient, tmp_path, capsys, extra, message):
    out = tmp_path / "cmp"
    assert main(["compare", f"ckpt={patient['ckpt']}", f"shards={patient['task']}", f"out={out}", *extra, *FT]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
