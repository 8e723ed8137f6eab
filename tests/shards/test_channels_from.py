"""Task data packed on the pretraining pack's channels (channels_from=), with sentence events per chunk."""

import json
import shutil

import pytest

from ieegfm.__main__ import main
from ieegfm.config import load_config
from ieegfm.data.tar import decode_sample, tar_samples
from ieegfm.simulate import simulate


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cf")
    over = ["hours=0.1", "days=1", "block_minutes=2", "task_minutes=1.5", "task_blocks=3", "seed=2"]
    simulate(load_config("simulate", overrides=[f"out={root / 'sim'}", *over]))
    assert (
        main(
            [
                "pack",
                f"recordings={root / 'sim' / 'recordings.tsv'}",
                f"out={root / 'amb'}",
                "preprocess.montage=average",
            ]
        )
        == 0
    )
    return root


def test_task_pack_reuses_channels_and_config_and_carries_events(packs):
    out = packs / "task"
    args = [
        "pack",
        f"recordings={packs / 'sim' / 'recordings_task.tsv'}",
        f"out={out}",
        f"channels_from={packs / 'amb'}",
    ]
    assert main([*args, "split.val=0.34", "split.test=0.34"]) == 0
    amb = json.loads((packs / "amb" / "manifest.json").read_text())
    task = json.loads((out / "manifest.json").read_text())
    assert task["subjects"]["sim01"]["ch_names"] == amb["subjects"]["sim01"]["ch_names"]
    assert task["config"]["preprocess"]["montage"] == "average"  # taken from the pretraining pack
    assert task["channels_from"]["shards"] == str(packs / "amb") and len(task["channels_from"]["manifest_sha256"]) == 64
    samples = [decode_sample(s) for s in tar_samples(iter([{"url": str(next(out.glob("train-*.tar")))}]))]
    events = [e for s in samples for e in s["meta"]["events"]]
    assert events and {e["trial_type"] for e in events} == {"sentence"} and all(e["value"] for e in events)
    for s in samples:  # each chunk lists the sentences overlapping it (onsets on the clock of tmin)
        t0, t1 = s["meta"]["tmin"], s["meta"]["tmin"] + s["brain"].shape[1] / s["meta"]["sfreq"]
        assert all(e["onset"] < t1 and e["onset"] + e["duration"] > t0 for e in s["meta"]["events"])


def test_missing_pretraining_channel_or_subject_is_a_one_line_error(packs, tmp_path, capsys):
    ref = tmp_path / "ref"
    shutil.copytree(packs / "amb", ref)
    manifest = json.loads((ref / "manifest.json").read_text())
    manifest["subjects"]["sim01"]["picks"].append("ZZ9")
    (ref / "manifest.json").write_text(json.dumps(manifest))
    table = packs / "sim" / "recordings_task.tsv"
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 'o'}", f"channels_from={ref}"]) == 2
    err = capsys.readouterr().err
    assert "lacks 1 channel(s) of the pretraining shards" in err and "ZZ9" in err and err.count("\n") == 1
    manifest["subjects"] = {"other": manifest["subjects"]["sim01"]}
    (ref / "manifest.json").write_text(json.dumps(manifest))
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 'o'}", f"channels_from={ref}"]) == 2
    assert "subject 'sim01' is not in channels_from" in capsys.readouterr().err


def test_an_old_pack_without_bands_refuses_other_bands(packs, tmp_path, capsys):
    """A pack written before ``preprocess.bands`` existed holds lfp rows only; a task pack on it asking for more
    bands would not fit its encoder: a one-line error, nothing written."""
    old = tmp_path / "old"
    old.mkdir()
    m = json.loads((packs / "amb" / "manifest.json").read_text())
    m.pop("bands")
    m["config"]["preprocess"].pop("bands")
    (old / "manifest.json").write_text(json.dumps(m))
    task = ["pack", f"recordings={packs / 'sim' / 'recordings_task.tsv'}", f"out={tmp_path / 'task'}"]
    assert main([*task, f"channels_from={old}", "preprocess.bands=[lfp,gamma]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds bands ['lfp']" in err and "gamma" in err
    assert not (tmp_path / "task" / "manifest.json").exists()
