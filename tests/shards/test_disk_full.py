"""A write that fails (disk full, a file size limit) while packing: one-line error, nothing incomplete looks
finished, and the rerun after space is freed finishes with the shards of an uninterrupted run."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ieegfm.config import load_config
from ieegfm.errors import OutputError
from ieegfm.io.lock import write_errors_as_output_error
from ieegfm.shards import pack as pack_module


def _published(out: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}
    for name in ("sizes.json", "manifest.json"):
        if (out / name).is_file():
            files[name] = (out / name).read_bytes()
    return files


def _pack(table: Path, out: Path, max_file_bytes: int | None) -> subprocess.CompletedProcess:
    """`ieegfm pack` in a process whose files may not grow past ``max_file_bytes`` (RLIMIT_FSIZE; the write then
    fails with EFBIG, as it fails with ENOSPC on a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "ieegfm", "pack", f"recordings={table}", f"out={out}"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=limit if max_file_bytes is not None else None,
        timeout=300,
    )


@pytest.fixture
def sizes(recordings, tmp_path, monkeypatch):
    """An uninterrupted pack's published files and the largest work file (its ``.work`` kept to measure it)."""
    monkeypatch.setattr(pack_module.shutil, "rmtree", lambda *a, **k: None)
    pack_module.pack(load_config("pack", overrides=[f"recordings={recordings}", f"out={tmp_path / 'ref'}"]))
    work = max(p.stat().st_size for p in (tmp_path / "ref" / ".work").glob("*.npy"))
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "ref" / ".work")
    reference = _published(tmp_path / "ref")
    tar = max(len(v) for k, v in reference.items() if k.endswith(".tar"))
    return {"reference": reference, "work": work, "tar": tar}


@pytest.mark.parametrize("phase", ["work files", "shards"])
def test_write_error_is_one_line_and_the_rerun_finishes(recordings, tmp_path, sizes, phase):
    if phase == "shards":  # work files fit, the largest shard does not
        assert sizes["tar"] > sizes["work"]
        limit = (sizes["work"] + sizes["tar"]) // 2
    else:
        limit = sizes["work"] // 2
    out = tmp_path / "s"
    failed = _pack(recordings, out, limit)
    assert failed.returncode == 2, failed.stderr[-3000:]
    err = [line for line in failed.stderr.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and f"out={out}: cannot write" in err[0] and "file too large" in err[0], failed.stderr
    assert "Traceback" not in failed.stderr
    left = _published(out)
    assert "manifest.json" not in left and "sizes.json" not in left
    assert all(sizes["reference"][name] == data for name, data in left.items())  # no wrong complete-looking file
    if phase == "shards":
        assert list(out.glob("*.tar.tmp"))  # the shard being written kept its temporary name
        done = list((out / ".work").glob("*.done.json"))
        assert done  # finished blocks kept for the rerun
    rerun = _pack(recordings, out, None)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _published(out) | {"manifest.json": b""} == sizes["reference"] | {"manifest.json": b""}
    m, ref = (json.loads(d) for d in (_published(out)["manifest.json"], sizes["reference"]["manifest.json"]))
    m["config"].pop("out"), ref["config"].pop("out")
    assert m == ref
    assert not list(out.glob("*.tmp")) and not (out / ".work").exists()


def test_read_errors_of_inputs_are_not_reported_as_output_errors(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"cannot write \(.*x.tar\): no space left"):
        with write_errors_as_output_error(out):
            raise OSError(28, "No space left on device", str(out / "x.tar"))
    with pytest.raises(PermissionError):  # a read of an input elsewhere: not the output folder's fault
        with write_errors_as_output_error(out):
            raise PermissionError(13, "Permission denied", str(tmp_path / "input.edf"))


def test_pretrain_that_cannot_write_its_checkpoint_is_one_line(recordings, tmp_path):
    from recording_fixtures import TINY_MODEL

    shards = tmp_path / "s"
    pack_module.pack(load_config("pack", overrides=[f"recordings={recordings}", f"out={shards}"]))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # config and logs fit, a checkpoint does not

    run = [f"shards={shards}", f"out={tmp_path / 'run'}", "trainer.max_steps=2", "trainer.accelerator=cpu"]
    failed = subprocess.run(
        [sys.executable, "-m", "ieegfm", "pretrain", *run, "trainer.enable_progress_bar=false", *TINY_MODEL],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=limit, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 2, failed.stderr[-3000:]
    err = [line for line in failed.stderr.splitlines() if line.startswith("ieegfm")]
    assert len(err) == 1 and "cannot write" in err[0] and "file too large" in err[0], failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no checkpoint that looks complete but is not
