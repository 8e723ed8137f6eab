"""One writer per output folder: a second pack / pretrain / scale into a locked folder refuses with one line; a
holder killed with SIGKILL leaves no stale lock."""

import subprocess
import sys
import time

from ieegfm.__main__ import main
from ieegfm.io.lock import LOCK_NAME, exclusive_output


def _one_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]
    assert len(lines) == 1, lines
    return lines[0]


def test_second_pack_into_a_locked_folder_refuses(recordings, tmp_path, capsys):
    out = tmp_path / "s"
    with exclusive_output(out, "pack"):
        assert main(["pack", f"recordings={recordings}", f"out={out}"]) == 2
        err = _one_line(capsys)
        assert f"out={out}: `ieegfm pack` (pid " in err and "expected one writer per output folder" in err
        assert not (out / "manifest.json").exists()
    assert main(["pack", f"recordings={recordings}", f"out={out}"]) == 0  # released: the next one runs


def test_pretrain_into_a_locked_folder_refuses(tmp_path, capsys):
    out = tmp_path / "run"
    with exclusive_output(out, "pretrain"):
        assert main(["pretrain", f"shards={tmp_path}", f"out={out}"]) == 2
        assert "`ieegfm pretrain` (pid" in _one_line(capsys)


def test_a_killed_holder_leaves_no_stale_lock(recordings, tmp_path):
    out = tmp_path / "s"
    code = f"from ieegfm.io.lock import exclusive_output\nwith exclusive_output({str(out)!r}, 'pack'):\n"
    code += "    print('held', flush=True)\n    import time; time.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert main(["pack", f"recordings={recordings}", f"out={out}"]) == 2
    holder.kill()  # SIGKILL: no cleanup runs
    holder.wait()
    time.sleep(0.1)
    assert (out / LOCK_NAME).exists()  # the file stays, the lock does not
    assert main(["pack", f"recordings={recordings}", f"out={out}"]) == 0
