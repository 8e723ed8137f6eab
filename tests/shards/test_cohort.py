"""Several packs read as one cohort: one pack per patient, pretrained together, the packs untouched."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recording_fixtures import FAST, TINY_MODEL

from ieegfm.__main__ import main
from ieegfm.checkpoint import CONTRACT_KEY
from ieegfm.config import load_config
from ieegfm.errors import InputError
from ieegfm.io.manifest import read_manifest
from ieegfm.shards.cohort import pack_folders, write_cohort
from ieegfm.simulate import simulate


def _sha(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    """Two patients (4 and 3 shafts) packed each on its own, as a cohort packs in parallel."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cohort")
    over = ["hours=0.25", "days=1", "block_minutes=5", "task_minutes=0", "subjects=2"]
    tsv = simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over]))
    header, *rows = tsv.read_text().splitlines()
    out = {}
    for subject in ("sim01", "sim02"):
        own = tsv.parent / f"recordings_{subject}.tsv"
        own.write_text("\n".join([header, *[r for r in rows if r.startswith(subject + "\t")]]) + "\n")
        assert main(["pack", f"recordings={own}", f"out={root / subject}", "split.test=0.34"]) == 0
        out[subject] = root / subject
    return out


def test_a_cohort_reads_every_pack_and_numbers_subjects_by_label(packs, tmp_path):
    a, b = read_manifest(packs["sim01"]), read_manifest(packs["sim02"])
    before = {s: _sha(p) for s, p in packs.items()}
    dst = write_cohort([packs["sim01"], packs["sim02"]], tmp_path / "cohort")
    m = read_manifest(dst)
    assert m.subject_index() == {"sim01": 0, "sim02": 1}
    assert m.subjects["sim02"].ch_names == b.subjects["sim02"].ch_names
    assert m.n_chans_max == max(a.n_chans_max, b.n_chans_max) and a.n_chans_max != b.n_chans_max
    for sp in ("train", "val", "test"):
        assert len(m.entries(sp)) == len(a.entries(sp)) + len(b.entries(sp))
        assert m.n_windows(sp) == a.n_windows(sp) + b.n_windows(sp)
        assert m.splits[sp].hours == pytest.approx(a.splits[sp].hours + b.splits[sp].hours)
        for e in m.entries(sp):
            assert (dst / e.name).is_file()
    raw = json.loads((dst / "manifest.json").read_text())
    assert [p["subjects"] for p in raw["cohort"]["packs"]] == [["sim01"], ["sim02"]]
    # each patient's hours stay known (one pack each): the checkpoint contract and the exported card report them
    assert m.subject_hours() == {
        s: {sp: st.hours for sp, st in read_manifest(packs[s]).splits.items()} for s in ("sim01", "sim02")
    }
    assert {s: _sha(p) for s, p in packs.items()} == before  # the packs are not touched
    assert pack_folders([str(packs["sim01"]), str(packs["sim02"])]) == [packs["sim01"], packs["sim02"]]
    listing = tmp_path / "packs.txt"
    listing.write_text(f"# the cohort\n{packs['sim01']}\n\n{os.path.relpath(packs['sim02'], tmp_path)}  # relative\n")
    assert [p.resolve() for p in pack_folders(str(listing))] == [packs["sim01"].resolve(), packs["sim02"].resolve()]


def test_packs_that_cannot_be_read_as_one_are_one_line_errors(packs, tmp_path):
    clash = tmp_path / "clash"
    shutil.copytree(packs["sim02"], clash)
    raw = json.loads((clash / "manifest.json").read_text())
    raw["subjects"]["sim01"] = raw["subjects"].pop("sim02")  # sim01's label on sim02's implant
    (clash / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"subject 'sim01' is also in .*sim01 with other channels \(\d+ vs \d+\)"):
        write_cohort([packs["sim01"], clash], tmp_path / "c1")
    raw = json.loads((packs["sim02"] / "manifest.json").read_text())
    raw["window_s"] = 2.0
    (clash / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"window_s=2.0 but 3.0 in .*sim01; the packs of one pretraining"):
        write_cohort([packs["sim01"], clash], tmp_path / "c2")
    assert not (tmp_path / "c2").exists() and not (tmp_path / "c1").exists()
    with pytest.raises(InputError, match="named twice"):
        pack_folders([str(packs["sim01"]), str(packs["sim01"])])


@pytest.mark.slow
def test_pretraining_on_two_packs_and_evaluating_each(packs, tmp_path, capsys):
    run = tmp_path / "pre"
    shards = f"shards=[{packs['sim01']},{packs['sim02']}]"
    assert (
        main(["pretrain", shards, f"out={run}", "trainer.max_steps=20", "data.batch_size=16", *TINY_MODEL, *FAST]) == 0
    )
    ckpt = run / "checkpoints" / "last.ckpt"
    plan = json.loads((run / "summary.json").read_text())["subject_plan"]  # balanced epochs (subject_alpha 0.5)
    assert set(plan) == {"sim01", "sim02"} and all(0 < v["per_epoch"] <= v["windows"] for v in plan.values())
    contract = torch.load(ckpt, map_location="cpu", weights_only=True)
    subjects = contract[CONTRACT_KEY]["subjects"]
    assert set(subjects) == {"sim01", "sim02"}
    assert tuple(subjects["sim02"]["ch_names"]) == read_manifest(packs["sim02"]).subjects["sim02"].ch_names
    out = tmp_path / "b.json"
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={packs['sim02']}", f"out={out}"]) == 0  # one pack of it
    m = json.loads(out.read_text())
    assert list(m["subjects"]) == ["sim02"] and m["n_candidates"] == read_manifest(packs["sim02"]).n_windows("test")
    both = tmp_path / "both.json"
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={run / 'cohort'}", f"out={both}"]) == 0
    assert list(json.loads(both.read_text())["subjects"]) == ["sim01", "sim02"]
    bad = tmp_path / "bad"
    shutil.copytree(packs["sim02"], bad)
    raw = json.loads((bad / "manifest.json").read_text())
    raw["n_features"] = 7
    (bad / "manifest.json").write_text(json.dumps(raw))
    capsys.readouterr()
    assert main(["pretrain", f"shards=[{packs['sim01']},{bad}]", f"out={tmp_path / 'x'}", *FAST]) == 2
    assert "n_features=7 but" in capsys.readouterr().err


def test_the_slurm_array_packs_one_patient_per_task(packs, tmp_path):
    """tools/slurm/pack_array.sbatch run as SLURM would run its two tasks: each packs one patient of the whole
    table (pack subjects=[label]) into its own folder, the same shards as a table of that patient alone, and lists
    it in packs.txt, which pretrain reads as shards=packs.txt."""
    script = Path(__file__).parents[2] / "tools" / "slurm" / "pack_array.sbatch"
    table = packs["sim01"].parent / "sim" / "recordings.tsv"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "SLURM_CPUS_PER_TASK": "1"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    for task in ("1", "0"):
        subprocess.run(["bash", str(script), str(table), str(tmp_path), "split.test=0.34"], check=True,
                       env={**env, "SLURM_ARRAY_TASK_ID": task}, capture_output=True)  # fmt: skip
    assert (tmp_path / "packs.txt").read_text().split() == ["sim02", "sim01"]
    assert pack_folders(str(tmp_path / "packs.txt")) == [tmp_path / "sim02", tmp_path / "sim01"]
    for label in ("sim01", "sim02"):
        tars = {k: v for k, v in _sha(tmp_path / label).items() if k.endswith(".tar")}
        assert tars and tars == {k: v for k, v in _sha(packs[label]).items() if k.endswith(".tar")}
    assert list(read_manifest(tmp_path / "sim02").subjects) == ["sim02"]
    with pytest.raises(InputError, match=r"\['sim09'\] not in .*recordings.tsv; it holds \['sim01', 'sim02'\]"):
        from ieegfm.shards.pack import pack

        pack(load_config("pack", overrides=[f"recordings={table}", "subjects=[sim09]", f"out={tmp_path / 'x'}"]))
