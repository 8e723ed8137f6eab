"""``ieegfm report RUNS_DIR out=FILE``: one file gathering what the analyses under a folder wrote.

Sections, each with its controls and the config that made it, as the commands wrote them: scaling sweeps
(``fit.json`` + ``scale.md`` + PNGs), finetuning comparisons (``comparison.md`` + PNG), model cards
(``card.json`` of finetuned runs), drift (``drift.json`` + PNG) and encoding models (``encoding.json`` + PNG).
``out`` ending in ``.html`` writes one self-contained page (figures embedded as base64 PNG); anything else a
Markdown file that links the PNGs where they are.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from ieegfm.errors import InputError
from ieegfm.finetune.cards import cards_table, list_cards


def _sections(root: Path) -> list[dict]:
    """``{"title", "folder", "text" (Markdown), "figures" [Path], "config" (Path | None)}`` per result found."""
    out = []
    for fit in sorted(root.rglob("fit.json")):
        d = fit.parent
        md = d / "scale.md"
        out.append(
            {
                "title": f"Scaling sweep: {d.relative_to(root) if d != root else d.name}",
                "folder": d,
                "text": md.read_text() if md.is_file() else "",
                "figures": sorted(d.glob("scale_*.png")),
                "config": d / "spec.yaml" if (d / "spec.yaml").is_file() else d / "sweep.json",
            }
        )
    for cmp in sorted(root.rglob("comparison.md")):
        d = cmp.parent
        out.append(
            {
                "title": f"Finetuning comparison: {d.relative_to(root) if d != root else d.name}",
                "folder": d,
                "text": cmp.read_text(),
                "figures": [d / "comparison.png"] if (d / "comparison.png").is_file() else [],
                "config": None,
            }
        )
    for path in sorted(root.rglob("drift.json")):
        r = json.loads(path.read_text())
        dec = r["day_decoding"]
        lines = [
            f"Day decoded from the embeddings of {r['ckpt']} on {r['shards']} ({', '.join(r['splits'])}): "
            f"r = {r['day_r']:.3f}, block-permutation p = {r['day_p_value']:.3g} ({dec['n_perm']} permutations; null "
            f"mean {dec['null_r_mean']:.3f}, 95th percentile {dec['null_r_95']:.3f}; {dec['n_blocks']} blocks, "
            f"{dec['n_days']} days; {dec['cv']}).",
            "",
            "| split | candidates | mean relative rank | shuffled control | by day |",
            "|---|---|---|---|---|",
        ]
        for split, v in r["retrieval"].items():
            days = ", ".join(f"{k}: {g['mean_relative_rank']:.3f}" for k, g in v["by_day"].items())
            lines.append(
                f"| {split} | {v['n_candidates']} | {v['mean_relative_rank']:.3f} | "
                f"{v['shuffled_mean_relative_rank']:.3f} | {days} |"
            )
        out.append(_json_section("Drift across days", path, "\n".join(lines), root))
    for path in sorted(root.rglob("encoding.json")):
        r = json.loads(path.read_text())
        ranked = sorted(r["channels"].items(), key=lambda kv: -kv[1]["r"])
        lines = [
            f"{r['subject']}: {r['features']} -> {r['target']}; lags {r['lags_s'][0]:g}-{r['lags_s'][-1]:g} s, "
            f"{r['hours']:.2f} h of {r['n_blocks']} blocks; {r['cv']}; null: {r['null']}.",
            "",
            "| channel | shaft | r | R² | null 95% | p | significant |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {n} | {v['shaft']} | {v['r']:.3f} | {v['r2']:.3f} | {v['null_r_95']:.3f} | {v['p_value']:.3g} | "
            f"{'yes' if v['significant'] else 'no'} |"
            for n, v in ranked
        ]
        out.append(_json_section("Encoding models", path, "\n".join(lines), root))
    cards = list_cards(root)
    if cards:
        out.append({"title": "Model cards", "folder": root, "text": cards_table(cards), "figures": [], "config": None})
    return out


def _json_section(title: str, path: Path, text: str, root: Path) -> dict:
    d = path.parent
    png = path.with_suffix(".png")
    return {
        "title": f"{title}: {d.relative_to(root) if d != root else d.name}",
        "folder": d,
        "text": text + f"\n\nSource: `{path}` (every figure and setting it was made with).\n",
        "figures": [png] if png.is_file() else [],
        "config": None,
    }


def report(cfg) -> Path:
    """Write the report of ``cfg.runs_dir`` to ``cfg.out``.

    Raises
    ------
    InputError
        ``runs_dir`` is not a folder, or holds no result of ``scale``, ``compare``, ``drift``, ``encode`` or
        ``finetune``.
    """
    root = Path(cfg.runs_dir)
    if not root.is_dir():
        raise InputError(f"runs_dir={root}: not a folder")
    sections = _sections(root)
    if not sections:
        raise InputError(
            f"runs_dir={root}: no fit.json, comparison.md, drift.json, encoding.json or card.json under it; expected "
            "the output folder of ieegfm scale, compare, drift, encode or finetune"
        )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".html", ".htm"):
        out.write_text(_html(root, sections))
    else:
        parts = [f"# ieegfm report: {root}\n"]
        for s in sections:
            parts.append(f"## {s['title']}\n\n{s['text'].strip()}\n")
            parts += [f"![{f.name}]({os.path.relpath(f, out.parent)})\n" for f in s["figures"]]
            if s["config"] is not None and s["config"].is_file():
                parts.append(f"Config: `{s['config']}`\n")
        out.write_text("\n".join(parts))
    return out


def _html(root: Path, sections: list[dict]) -> str:
    body = [f"<h1>ieegfm report: {html.escape(str(root))}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s['title'])}</h2>")
        body.append(f"<pre>{html.escape(s['text'].strip())}</pre>")
        for f in s["figures"]:
            data = base64.b64encode(f.read_bytes()).decode()
            body.append(f'<p><img alt="{html.escape(f.name)}" src="data:image/png;base64,{data}"></p>')
        if s["config"] is not None and s["config"].is_file():
            body.append(
                f"<details><summary>config: {html.escape(str(s['config']))}</summary>"
                f"<pre>{html.escape(s['config'].read_text())}</pre></details>"
            )
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}pre{background:#f6f6f6;padding:.6em;overflow:auto}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>ieegfm report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
