"""ieegfm scale patients=[...]: nested sets of pretraining patients at fixed hours per patient or fixed total hours;
subsets of some subjects drop the others from every split."""

import csv
import json

import pytest
import torch
from recording_fixtures import FAST, TINY_MODEL

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.data import ShardDataModule
from ieegfm.io.manifest import read_manifest
from ieegfm.shards.subset import subset_view
from ieegfm.simulate import simulate

TINY = [*TINY_MODEL, *FAST, "trainer.max_steps=6", "data.batch_size=16", "trainer.val_check_interval=3"]
FT = [
    "finetune.trainer.max_steps=4",
    "finetune.trainer.val_check_interval=2",
    "finetune.trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three simulated patients (4, 3 and 5 shafts) in one pack (its tars mix patients), and sim01's task shards."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cohort")
    over = ["hours=0.15", "days=1", "block_minutes=3", "task_minutes=4", "task_blocks=4", "subjects=3", "seed=0"]
    simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over]))
    split = ["split.val=0.34", "split.test=0.34", "chunk_s=20"]
    assert main(["pack", f"recordings={root / 'sim' / 'recordings.tsv'}", f"out={root / 'amb'}", *split]) == 0
    task = ["pack", f"recordings={root / 'sim' / 'recordings_task.tsv'}", "subjects=[sim01]", f"out={root / 'task'}"]
    assert main([*task, f"channels_from={root / 'amb'}", "split.val=0.25", "split.test=0.25"]) == 0
    return root


def _args(root, out, *more):
    return ["scale", f"pretrain_shards={root / 'amb'}", f"task_shards={root / 'task'}", f"out={out}", *TINY, *FT, *more]


def test_a_subset_of_subjects_drops_the_others_from_every_split(cohort, tmp_path):
    src = read_manifest(cohort / "amb")
    assert len({e.name for e in src.entries("val")}) >= 1 and len(src.subjects) == 3
    view = subset_view(cohort / "amb", tmp_path / "v", "all", subjects=["sim03", "sim01"])
    m = read_manifest(view)
    assert list(m.subjects) == ["sim01", "sim03"] and [v.index for v in m.subjects.values()] == [0, 1]
    assert m.n_chans_max == max(len(m.subjects[s].ch_names) for s in m.subjects)
    assert m.subset["subjects"] == ["sim01", "sim03"]
    for sp in ("train", "val", "test"):
        kept = set(m.splits[sp].blocks)
        assert kept and all(b.startswith(("sim01_", "sim03_")) for b in kept), (sp, kept)
        assert kept < set(src.splits[sp].blocks)
        assert 0 < m.n_windows(sp) < src.n_windows(sp)
    dm = ShardDataModule(str(view), batch_size=8, num_workers=0)
    seen = {int(s) for b in dm.eval_dataloader("val") for s in b["subject"]}
    assert seen == {0, 1}
    assert sum(len(b["subject"]) for b in dm.eval_dataloader("test")) == m.n_windows("test")


def test_bad_patients_axes_are_one_line_before_training(cohort, tmp_path, capsys, monkeypatch):
    import ieegfm.analysis.scale.point as scale_point

    monkeypatch.setattr(scale_point, "pretrain", lambda cfg: pytest.fail("pretraining started before the checks"))
    for bad, message in (
        ("patients=[1,4]", "patients=[1, 4]: expected distinct numbers from 1 (the task's patients) to 3"),
        ("patients=[0,2]", "expected distinct numbers from 1"),
        ("patient_order=[sim02,sim01,sim03]", "expected the task's patients ['sim01'] first"),
        ("patient_order=[sim01,sim07]", "expected distinct labels among the pretraining patients"),
    ):
        more = [bad] if bad.startswith("patients") else ["patients=[1,2]", bad]
        assert main(_args(cohort, tmp_path / "s", "hours=[0.05]", *more)) == 2, bad
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (bad, err)
    assert main(_args(cohort, tmp_path / "s", "hours=[0.1]", "patients=[1,3]")) == 2  # 0.1 h each: more than held
    assert "but subject 'sim0" in capsys.readouterr().err
    assert not (tmp_path / "s" / "points").exists()


@pytest.mark.slow
def test_a_patients_sweep_at_fixed_total_hours(cohort, tmp_path):
    out = tmp_path / "s"
    grid = ["patients=[1,3]", "hours=[0.03,0.05]", "hours_per=total", "seeds=[0]", "n_boot=200"]
    assert main(_args(cohort, out, *grid, "trainer.early_stopping_patience=1")) == 0
    rows = list(csv.DictReader(open(out / "points.csv")))
    assert [(r["n_patients"], r["hours"]) for r in rows] == [("1", "0.03"), ("1", "0.05"), ("3", "0.03"), ("3", "0.05")]
    assert [r["patients"] for r in rows] == ["sim01", "sim01", "sim01+sim02+sim03", "sim01+sim02+sim03"]
    for r in rows:  # the same total hours, split among the point's patients (to within one chunk each)
        assert float(r["total_hours"]) == pytest.approx(float(r["hours"]), abs=float(r["n_patients"]) * 20 / 3600)
    assert float(rows[2]["hours_per_patient"]) < float(rows[0]["hours_per_patient"])
    assert len({r["n_candidates"] for r in rows}) == 1 and rows[0]["task_only_mean_relative_rank"]
    card = json.loads((out / "points" / "default" / "3p" / "0.03h" / "seed0" / "card.json").read_text())
    assert card["patients"] == ["sim01", "sim02", "sim03"] and card["group"] == "default/3p"
    assert card["compute"]["early_stopping_patience"] == 1 and card["compute"]["steps_done"] <= 6
    contract = torch.load(card["checkpoint"], map_location="cpu", weights_only=True)["ieegfm_contract"]
    assert sorted(contract["subjects"]) == ["sim01", "sim02", "sim03"]
    assert len(set(card["rows"]["pretrain_test"]["per_window"]["subject"])) == 3  # each patient's test windows
    one = json.loads((out / "points" / "default" / "1p" / "0.03h" / "seed0" / "card.json").read_text())
    contract = torch.load(one["checkpoint"], map_location="cpu", weights_only=True)["ieegfm_contract"]
    assert list(contract["subjects"]) == ["sim01"]  # the other patients are not in the model at all
    assert len(set(one["rows"]["pretrain_test"]["per_window"]["subject"])) == 1
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit) >= {"default/1p", "default/3p", "_patients", "_paired_tests"}
    assert fit["default/1p"]["slope"] is not None  # the hours fit within each set of patients
    over = fit["_patients"]["default"]
    assert set(over) == {"0.03", "0.05"} and over["0.03"]["n_patients"] == [1, 3]
    f = over["0.05"]
    assert f["slope_ci"][0] <= f["slope"] <= f["slope_ci"][1] and f["hours_per"] == "total"
    tests = fit["_paired_tests"]
    assert {(t["condition"], t["baseline"], t["hours"]) for t in tests} == {
        ("default/3p", "default/1p", "0.03"),
        ("default/3p", "default/1p", "0.05"),
    }
    assert (out / "scale_patients_default.png").stat().st_size > 10_000
    assert (out / "scale_default_3p.png").is_file()
    assert "per decade of patients" in (out / "scale.md").read_text()
