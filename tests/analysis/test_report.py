"""The report a person reads in a browser: every result found, tables as HTML tables, figures within the page."""

import json
import re
import shutil
import subprocess
import types

import pytest

from ieegfm.__main__ import main
from ieegfm.analysis.report import report
from ieegfm.analysis.report.blocks import Code, Heading, Table, Text, parse_markdown
from ieegfm.analysis.report.pretraining import find_runs, read_scalars

FAST = ["trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_markdown_reader_keeps_tables_code_and_headings():
    text = "Intro `code` line.\nsecond line\n\n## Part\n\n| a | b \\| c |\n|---|---|\n| 1 | x \\| y |\n| 2 |\n\n```\nk: v\n```"
    blocks = parse_markdown(text)
    assert blocks[0] == Text("Intro `code` line.\nsecond line")
    assert blocks[1] == Heading("Part", 2)
    assert blocks[2] == Table(("a", "b | c"), (("1", "x | y"), ("2", "")))
    assert blocks[3] == Code("k: v")


def _fake_encoding(d, n=12, evil="<script>alert(1)</script>"):
    d.mkdir(parents=True)
    channels = {
        (evil if i == 0 else f"LA{i}-LA{i + 1}"): {
            "shaft": "LA",
            "r": 0.5 - 0.03 * i,
            "r2": 0.1,
            "null_r_95": 0.05,
            "p_value": 0.01,
            "significant": i < 5,
        }
        for i in range(n)
    }
    r = {
        "subject": "sim01",
        "features": "logmel",
        "target": "ieeg",
        "lags_s": [0.0, 0.5],
        "hours": 1.0,
        "n_blocks": 2,
        "cv": "leave-one-block-out",
        "null": "circular shifts",
        "channels": channels,
    }
    (d / "encoding.json").write_text(json.dumps(r))


def test_html_escapes_what_results_hold_and_sorts_long_tables(tmp_path):
    _fake_encoding(tmp_path / "runs" / "enc")
    out = report(types.SimpleNamespace(runs_dir=tmp_path / "runs", out=tmp_path / "r.html"))
    page = out.read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<table class="sortable">' in page  # 12 rows > SORTABLE_ROWS
    assert "<pre>" not in page and not re.search(r"^\| ", page, re.M)  # no pipe text left


def test_report_of_a_pretraining_run_a_comparison_and_an_encoding_run(patient, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(patient["root"] / "pre", runs / "pre")
    pre = runs / "pre"
    ckpt = pre / "checkpoints" / "last.ckpt"
    amb = patient["root"] / "amb"
    assert main(["evaluate", f"ckpt={ckpt}", f"shards={amb}", "split=test", f"out={pre / 'test.json'}"]) == 0
    cmp = ["compare", f"ckpt={ckpt}", f"shards={patient['task']}", f"out={runs / 'cmp'}", "seeds=1"]
    grid = ["lr_grid=[1e-3]", "encoder_lr_scales=[1.0]", "trainer.max_steps=20", "data.batch_size=32"]
    assert main([*cmp, *grid, *FAST, "trainer.val_check_interval=10"]) == 0
    assert main(["encode", f"shards={amb}", f"out={runs / 'enc'}", "n_shifts=5", "features=logmel"]) == 0

    assert find_runs(runs) == [pre]
    scalars = read_scalars(pre / "tb")
    assert len(scalars["val/loss"][0]) == 2 and len(scalars["train/loss"][0]) >= 2  # validated at 100 and 200

    assert main(["report", str(runs), f"out={tmp_path / 'report.html'}"]) == 0
    page = (tmp_path / "report.html").read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", page)
    assert titles == ["Pretraining runs: runs", "Finetuning comparison: cmp", "Encoding models: enc", "Model cards"]
    sections = dict(zip(titles, re.split(r"<h2>.*?</h2>", page)[1:]))
    test = json.loads((pre / "test.json").read_text())
    pre_html = sections["Pretraining runs: runs"]
    assert f"<td>{test['mean_relative_rank']:.3f}</td>" in pre_html and f"<td>{test['n_candidates']}</td>" in pre_html
    assert pre_html.count('alt="pre loss"') == 1 and 'alt="pre test ranks"' in pre_html
    enc = json.loads((runs / "enc" / "encoding.json").read_text())["channels"]
    top = max(enc, key=lambda n: enc[n]["r"])
    assert f"<td>{top}</td><td>{enc[top]['shaft']}</td><td>{enc[top]['r']:.3f}</td>" in sections["Encoding models: enc"]
    assert "<th>p vs task-only</th>" in sections["Finetuning comparison: cmp"]
    assert "<pre>" not in page.split("<details>")[0] and not re.search(r"^\| ", page, re.M)

    md = tmp_path / "md" / "report.md"
    assert main(["report", str(runs), f"out={md}"]) == 0
    text = md.read_text()
    assert "## Pretraining runs: runs" in text and "](report_figures/000_pre_loss.png)" in text
    assert (md.parent / "report_figures" / "000_pre_loss.png").stat().st_size > 10_000

    if CHROMIUM is None:
        pytest.skip("no headless Chromium (Debian: apt install chromium) for the screenshot check")
    # the page as a browser lays it out, 700 px wide (a laptop half-screen): nothing wider than the window, every figure within it
    probe = page.replace(
        "</body>",
        "<script>var w=innerWidth,b=document.documentElement.scrollWidth,i=[].slice.call(document.images)"
        ".filter(function(x){return x.getBoundingClientRect().right>w}).length;"
        "document.title='layout '+w+' '+b+' '+i+' '+document.images.length;</script></body>",
    )
    (tmp_path / "probe.html").write_text(probe)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=700,1400"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", (tmp_path / "probe.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    width, scroll, outside, n_images = map(
        int, re.search(r"<title>layout (\d+) (\d+) (\d+) (\d+)</title>", dom).groups()
    )
    assert scroll <= width and outside == 0 and n_images >= 4, (width, scroll, outside, n_images)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    img = Image.open(shot).convert("L")
    assert img.size == (700, 1400) and img.getextrema()[0] < 100  # drawn: dark text on the white page
