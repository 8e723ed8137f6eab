"""ieegfm scale: checks before any training, a sweep end to end, resumed without redoing finished points."""

import csv
import json
import shutil

import pytest
from recording_fixtures import FAST, TINY_MODEL

import ieegfm.analysis.scale.point as scale_point
import ieegfm.pretrain.run as pretrain_run
from ieegfm.__main__ import main
from ieegfm.config import load_config

TINY = [*TINY_MODEL, *FAST, "trainer.max_steps=6", "data.batch_size=16", "trainer.val_check_interval=6"]
FT = [
    "finetune.trainer.max_steps=6",
    "finetune.trainer.val_check_interval=3",
    "finetune.trainer.enable_progress_bar=false",
]


def _args(patient, out, *more):
    amb, task = patient["root"] / "amb", patient["task"]
    return ["scale", f"pretrain_shards={amb}", f"task_shards={task}", f"out={out}", *TINY, *FT, *more]


@pytest.fixture
def no_training(monkeypatch):
    def refuse(cfg):
        raise AssertionError("pretraining started before the sweep's checks")

    monkeypatch.setattr(scale_point, "pretrain", refuse)


def _other_patient(patient, tmp_path, subjects):
    """A shard folder whose manifest names other patients (the tars are those of the patient's)."""
    src = patient["root"] / "amb"
    dst = tmp_path / "other"
    dst.mkdir()
    m = json.loads((src / "manifest.json").read_text())
    m["subjects"] = {s: {**m["subjects"]["sim01"], "index": i} for i, s in enumerate(subjects)}
    for entries in m["shards"].values():
        for e in entries:
            e["name"] = str(src / e["name"])
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_more_hours_than_the_shards_hold_is_one_line_before_training(patient, tmp_path, capsys, no_training):
    assert main(_args(patient, tmp_path / "s", "hours=[0.1,3]")) == 2
    err = capsys.readouterr().err.strip()
    assert "hours=3 per patient, but subject 'sim01' has 0." in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s" / "points").exists()


def test_mixed_patients_are_refused_before_training(patient, tmp_path, capsys, no_training):
    other = _other_patient(patient, tmp_path, ["sim01", "sim02"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"conditions:\n  a: {{}}\n  b:\n    pretrain_shards: {other}\n")
    assert main([*_args(patient, tmp_path / "s", "hours=[0.1]"), "--config", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "conditions.b: pretrains on subjects ['sim01', 'sim02'], conditions.a on ['sim01']" in err
    (tmp_path / "x").mkdir()
    lone = _other_patient(patient, tmp_path / "x", ["sim02"])
    assert main(_args(patient, tmp_path / "s", "hours=[0.1]", f"pretrain_shards={lone}")) == 2
    assert "expected the task's patients among the pretraining ones" in capsys.readouterr().err


def test_a_task_split_that_changed_between_points_is_refused(patient, tmp_path, capsys, no_training):
    out = tmp_path / "s"
    out.mkdir()
    split = {"blocks": ["sim01_other"], "n_windows": 3, "sha256": ["0" * 64]}
    (out / "sweep.json").write_text(json.dumps({"task_test_split": {"default": split}}))
    assert main(_args(patient, out, "hours=[0.1]")) == 2
    err = capsys.readouterr().err
    assert "its test split (" in err and "differs from the one" in err and "(3 windows of 1 blocks)" in err
    assert json.loads((out / "sweep.json").read_text())["task_test_split"]["default"] == split  # the record is kept


def test_bad_condition_override_named_before_training(patient, tmp_path, capsys, no_training):
    spec = tmp_path / "spec.yaml"
    spec.write_text("conditions:\n  lin:\n    overrides: [model.encodr=linear]\n")
    assert main([*_args(patient, tmp_path / "s", "hours=[0.1]"), "--config", str(spec)]) == 2
    assert "model.encodr" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_end_to_end_and_resumed(patient, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    grid = ["hours=[0.05,0.1,all]", "seeds=[0]", "n_boot=200"]
    assert main(_args(patient, out, *grid, "point=0")) == 0  # one SLURM array task: point 0 only
    card0 = out / "points" / "default" / "0.05h" / "seed0" / "card.json"
    stamp = card0.stat().st_mtime_ns
    calls = []
    real = pretrain_run.pretrain
    monkeypatch.setattr(scale_point, "pretrain", lambda cfg: calls.append(cfg.out) or real(cfg))
    assert main(_args(patient, out, *grid)) == 0
    assert len(calls) == 2 and card0.stat().st_mtime_ns == stamp  # the finished point was not redone
    rows = list(csv.DictReader(open(out / "points.csv")))
    assert [r["hours"] for r in rows] == ["0.05", "0.1", "all"]
    assert (
        float(rows[0]["hours_per_patient"]) < float(rows[1]["hours_per_patient"]) < float(rows[2]["hours_per_patient"])
    )
    assert rows[0]["task_only_mean_relative_rank"] and rows[0]["compute_policy"] == "steps"
    assert len({r["n_candidates"] for r in rows}) == 1  # one task split
    fit = json.loads((out / "fit.json").read_text())["default"]
    assert fit["slope_ci"][0] <= fit["slope"] <= fit["slope_ci"][1] and len(fit["raw"]) == 3
    assert (out / "scale_default.png").stat().st_size > 10_000
    assert "slope per decade" in (out / "scale.md").read_text()
    assert main(["report", str(out), f"out={tmp_path / 'report.html'}"]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "Scaling sweep" in page and "data:image/png;base64," in page and "spec.yaml" in page
    assert "Model cards" in page and "finetuned_frozen" in page
    shutil.rmtree(out / "points" / "default" / "0.1h" / "seed0" / "finetuned_frozen")
    (out / "points" / "default" / "0.1h" / "seed0" / "card.json").unlink()  # killed after pretraining
    calls.clear()
    assert main(_args(patient, out, *grid)) == 0
    assert calls == []  # its pretraining was finished: reused, only the finetuning redone
    assert (out / "points" / "default" / "0.1h" / "seed0" / "card.json").is_file()
    # another pretraining config: every point pretrains again from scratch, none resumes the old checkpoints
    assert main(_args(patient, out, *grid, "optim.lr=1e-3")) == 0
    assert len(calls) == 3
    cfg = (out / "points" / "default" / "all" / "seed0" / "pretrain" / "config.yaml").read_text()
    assert "lr: 0.001" in cfg
    summary = json.loads((out / "points" / "default" / "all" / "seed0" / "pretrain" / "summary.json").read_text())
    assert summary["resumed_from"] is None


def test_slurm_launcher_writes_an_array_job(patient, tmp_path, no_training):
    out = tmp_path / "s"
    assert main(_args(patient, out, "hours=[0.05,0.1]", "seeds=[0,1]", "launcher=slurm")) == 0
    script = (out / "scale.sbatch").read_text()
    assert "#SBATCH --array=0-3" in script and 'point="${SLURM_ARRAY_TASK_ID}"' in script
    assert "--signal=TERM@120" in script and "--requeue" in script
    cfg = load_config("scale", out / "spec.yaml", ["point=3"])
    assert list(cfg.hours) == [0.05, 0.1] and cfg.point == 3


def test_conditions_with_other_task_test_windows_are_refused(patient, tmp_path, capsys, no_training):
    task = json.loads((patient["task"] / "manifest.json").read_text())
    other = tmp_path / "task2"
    other.mkdir()
    task["splits"]["test"]["blocks"] = task["splits"]["val"]["blocks"]
    (other / "manifest.json").write_text(json.dumps(task))
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"conditions:\n  a: {{}}\n  b:\n    task_shards: {other}\n")
    assert main([*_args(patient, tmp_path / "s", "hours=[0.1]"), "--config", str(spec)]) == 2
    assert "expected one task split for the whole sweep" in capsys.readouterr().err


def test_ready_made_sweeps_load(patient, capsys, no_training):
    from pathlib import Path

    specs = sorted((Path(__file__).parents[2] / "sweeps").glob("*.yaml"))
    assert {s.stem for s in specs} >= {"hours", "targets", "daytime", "encoder", "objective"}
    for spec in specs:
        cfg = load_config("scale", spec, ["pretrain_shards=P", "task_shards=T"])
        assert len(cfg.hours) >= 4 and len(cfg.seeds) >= 3, spec
    targets = specs[0].with_name("targets.yaml")
    amb, task = patient["root"] / "amb", patient["task"]
    assert main(["scale", f"spec={targets}", f"pretrain_shards={amb}", f"task_shards={task}", "hours=[0.1]"]) == 2
    assert "shards=MEL_SHARDS: no manifest.json" in capsys.readouterr().err  # the placeholder is named


def test_report_of_a_folder_without_results_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path), f"out={tmp_path / 'r.html'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no summary.json, fit.json, comparison.md, drift.json, encoding.json or card.json under it" in err
    assert not (tmp_path / "r.html").exists()
