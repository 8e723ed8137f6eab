"""Sections to a page: one self-contained HTML file (figures embedded, tables as sortable HTML tables, nothing
fetched) or a Markdown file that links the figures.

The HTML page fits its width: figures scale down to the text column (``max-width: 100%``), a table wider than the
column scrolls inside its own box, never the page. Tables of more than :data:`SORTABLE_ROWS` rows sort by a
click on a column header (numbers as numbers: ``0.151 ± 0.005`` sorts as 0.151; ``n/a`` last).
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

from ieegfm.analysis.report.blocks import Code, Details, Figure, Heading, Section, Table, Text

#: Tables with more rows than this sort by a click on a header.
SORTABLE_ROWS = 8

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav ul{columns:2;padding-left:1.2em}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
.table{overflow-x:auto;margin:.6em 0}
table{border-collapse:collapse;font-size:.88em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f5;position:sticky;top:0}
tr:nth-child(even) td{background:#fafafa}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f5;padding:0 .2em;border-radius:3px;overflow-wrap:anywhere}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
"""

# Click a header of a table.sortable: sort its rows by that column (numbers by value, then text; empty and n/a last).
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var t = row.cells[col].textContent.trim(), n = parseFloat(t);
        return isNaN(n) ? [t === "" || t === "n/a" ? 2 : 1, t.toLowerCase()] : [0, n];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];
        var c = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def inline_html(text: str) -> str:
    """ieegfm's inline Markdown as escaped HTML: ``code``, ``**bold**``, ``[text](link)``; everything else text."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(
            r"\[([^\]]+)\]\(([^)\s]+)\)",
            lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>',
            s,
        )
        out.append(s)
    return "".join(out)


def _block_html(b, level: int) -> str:
    if isinstance(b, Text):
        lines = b.markdown.splitlines()
        if lines and all(line.startswith(("- ", "  ")) for line in lines):
            items = "\n".join(lines).split("\n- ")
            items[0] = items[0][2:]
            return "<ul>" + "".join(f"<li>{inline_html(it)}</li>" for it in items) + "</ul>"
        return f"<p>{inline_html(b.markdown)}</p>"
    if isinstance(b, Heading):
        n = min(level + b.level, 6)
        return f"<h{n}>{inline_html(b.text)}</h{n}>"
    if isinstance(b, Table):
        cls = ' class="sortable"' if len(b.rows) > SORTABLE_ROWS else ""
        head = "".join(f"<th>{inline_html(h)}</th>" for h in b.header)
        rows = "".join("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in r) + "</tr>" for r in b.rows)
        return f'<div class="table"><table{cls}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
    if isinstance(b, Figure):
        data = base64.b64encode(b.data()).decode()
        return f'<img alt="{html.escape(b.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(b, Code):
        pre = f"<pre>{html.escape(b.text)}</pre>"
        return f"<details><summary>{inline_html(b.summary)}</summary>{pre}</details>" if b.summary else pre
    if isinstance(b, Details):
        inner = "".join(_block_html(x, level + 1) for x in b.blocks)
        return f"<details{' open' if b.open else ''}><summary>{inline_html(b.summary)}</summary>{inner}</details>"
    raise TypeError(f"not a report block: {type(b).__name__}")


def to_html(root: Path, sections: list[Section]) -> str:
    """The page: a title, a list of the sections, then each section (``<h2>``) with its blocks.

    Parameters
    ----------
    root : Path
        The runs folder the report is of (its title).
    sections : list of Section
        What was found under it.

    Returns
    -------
    str
        One HTML document; figures are embedded as base64 PNG, so the file stands alone.
    """
    nav = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections))
    body = [f"<h1>ieegfm report: {html.escape(str(root))}</h1>", f"<nav><ul>{nav}</ul></nav>"]
    for i, s in enumerate(sections):
        body.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
        body += [_block_html(b, 2) for b in s.blocks]
        body.append("</section>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>ieegfm report: {html.escape(root.name)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )


def _md_cell(c: str) -> str:
    return c.replace("|", "\\|").replace("\n", " ")


def _block_md(b, level: int, out: Path, assets: Path, made: list[Path]) -> str:
    if isinstance(b, Text):
        return b.markdown
    if isinstance(b, Heading):
        return "#" * min(level + b.level, 6) + " " + b.text
    if isinstance(b, Table):
        rows = [b.header, tuple("---" for _ in b.header), *b.rows]
        return "\n".join("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
    if isinstance(b, Figure):
        path = b.path
        if path is None:  # made for the report: written next to it
            assets.mkdir(parents=True, exist_ok=True)
            path = assets / f"{len(made):03d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', b.alt)}.png"
            path.write_bytes(b.data())
            made.append(path)
        return f"![{b.alt}]({os.path.relpath(path, out.parent)})"
    if isinstance(b, Code):
        return (f"{b.summary}:\n\n" if b.summary else "") + f"```\n{b.text.rstrip()}\n```"
    if isinstance(b, Details):
        return f"**{b.summary}**\n\n" + "\n\n".join(_block_md(x, level + 1, out, assets, made) for x in b.blocks)
    raise TypeError(f"not a report block: {type(b).__name__}")


def to_markdown(root: Path, sections: list[Section], out: Path) -> str:
    """The report as Markdown: figures on disk are linked where they are, figures made for the report (loss
    curves) are written to ``<out stem>_figures/`` and linked there."""
    assets = out.parent / f"{out.stem}_figures"
    made: list[Path] = []
    parts = [f"# ieegfm report: {root}"]
    for s in sections:
        parts.append(f"## {s.title}")
        parts += [_block_md(b, 2, out, assets, made) for b in s.blocks]
    return "\n\n".join(parts) + "\n"
