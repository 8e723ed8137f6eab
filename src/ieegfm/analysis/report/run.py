"""``ieegfm report RUNS_DIR out=FILE``: the sections found under a folder, rendered to one page."""

from __future__ import annotations

import json
from pathlib import Path

from ieegfm.analysis.report.blocks import Code, Figure, Section, Table, Text, parse_markdown
from ieegfm.analysis.report.pretraining import find_runs, pretraining_section
from ieegfm.analysis.report.render import to_html, to_markdown
from ieegfm.errors import InputError
from ieegfm.finetune.cards import cards_table, list_cards


def _name(d: Path, root: Path) -> str:
    return str(d.relative_to(root)) if d != root else d.name


def _config(path: Path) -> list:
    return [Code(path.read_text(), summary=f"config: `{path}`")] if path.is_file() else []


def _source(path: Path) -> Text:
    return Text(f"Source: `{path}` (every figure and setting it was made with).")


def _drift(path: Path, root: Path) -> Section:
    r = json.loads(path.read_text())
    dec = r["day_decoding"]
    text = Text(
        f"Day decoded from the embeddings of `{r['ckpt']}` on `{r['shards']}` ({', '.join(r['splits'])}): "
        f"r = {r['day_r']:.3f}, block-permutation p = {r['day_p_value']:.3g} ({dec['n_perm']} permutations; null "
        f"mean {dec['null_r_mean']:.3f}, 95th percentile {dec['null_r_95']:.3f}; {dec['n_blocks']} blocks, "
        f"{dec['n_days']} days; {dec['cv']})."
    )
    rows = tuple(
        (
            split,
            str(v["n_candidates"]),
            f"{v['mean_relative_rank']:.3f}",
            f"{v['shuffled_mean_relative_rank']:.3f}",
            ", ".join(f"{k}: {g['mean_relative_rank']:.3f}" for k, g in v["by_day"].items()),
        )
        for split, v in r["retrieval"].items()
    )
    table = Table(("split", "candidates", "mean relative rank", "shuffled control", "by day"), rows)
    png = path.with_suffix(".png")
    figs = [Figure(png.name, path=png)] if png.is_file() else []
    return Section(f"Drift across days: {_name(path.parent, root)}", path.parent, [text, table, *figs, _source(path)])


def _encoding(path: Path, root: Path) -> Section:
    r = json.loads(path.read_text())
    ranked = sorted(r["channels"].items(), key=lambda kv: -kv[1]["r"])
    text = Text(
        f"{r['subject']}: {r['features']} -> {r['target']}; lags {r['lags_s'][0]:g}-{r['lags_s'][-1]:g} s, "
        f"{r['hours']:.2f} h of {r['n_blocks']} blocks; {r['cv']}; null: {r['null']}."
    )
    rows = tuple(
        (
            n,
            str(v["shaft"]),
            f"{v['r']:.3f}",
            f"{v['r2']:.3f}",
            f"{v['null_r_95']:.3f}",
            f"{v['p_value']:.3g}",
            "yes" if v["significant"] else "no",
        )
        for n, v in ranked
    )
    table = Table(("channel", "shaft", "r", "R²", "null 95%", "p", "significant"), rows)
    png = path.with_suffix(".png")
    figs = [Figure(png.name, path=png)] if png.is_file() else []
    return Section(f"Encoding models: {_name(path.parent, root)}", path.parent, [text, table, *figs, _source(path)])


def find_sections(root: Path) -> list[Section]:
    """Every result under ``root``, in the order of the workflow: pretraining runs, finetuning comparisons, scaling
    sweeps, drift, encoding models, model cards.

    Parameters
    ----------
    root : Path
        A folder of runs (any depth).

    Returns
    -------
    list of Section
        Empty when the folder holds none of them.
    """
    out: list[Section] = []
    runs = find_runs(root)
    if runs:
        out.append(pretraining_section(root, runs))
    for cmp in sorted(root.rglob("comparison.md")):
        d = cmp.parent
        figs = [Figure("comparison.png", path=d / "comparison.png")] if (d / "comparison.png").is_file() else []
        out.append(Section(f"Finetuning comparison: {_name(d, root)}", d, [*parse_markdown(cmp.read_text()), *figs]))
    for fit in sorted(root.rglob("fit.json")):
        d = fit.parent
        md = d / "scale.md"
        blocks = parse_markdown(md.read_text()) if md.is_file() else []
        blocks += [Figure(p.name, path=p) for p in sorted(d.glob("scale_*.png"))]
        blocks += _config(d / "spec.yaml" if (d / "spec.yaml").is_file() else d / "sweep.json")
        out.append(Section(f"Scaling sweep: {_name(d, root)}", d, blocks))
    out += [_drift(p, root) for p in sorted(root.rglob("drift.json"))]
    out += [_encoding(p, root) for p in sorted(root.rglob("encoding.json"))]
    cards = list_cards(root)
    if cards:
        out.append(Section("Model cards", root, parse_markdown(cards_table(cards))))
    return out


def report(cfg) -> Path:
    """Write the report of ``cfg.runs_dir`` to ``cfg.out``.

    ``out`` ending in ``.html`` writes one self-contained page (figures embedded as base64 PNG, tables as HTML
    tables, sortable when long); anything else a Markdown file that links the figures where they are.

    Raises
    ------
    InputError
        ``runs_dir`` is not a folder, or holds no result of ``pretrain``, ``scale``, ``compare``, ``drift``,
        ``encode`` or ``finetune``.
    """
    root = Path(cfg.runs_dir)
    if not root.is_dir():
        raise InputError(f"runs_dir={root}: not a folder")
    sections = find_sections(root)
    if not sections:
        raise InputError(
            f"runs_dir={root}: no summary.json, fit.json, comparison.md, drift.json, encoding.json or card.json under "
            "it; expected the output folder of ieegfm pretrain, scale, compare, drift, encode or finetune"
        )
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = to_html(root, sections) if out.suffix.lower() in (".html", ".htm") else to_markdown(root, sections, out)
    out.write_text(page)
    return out
