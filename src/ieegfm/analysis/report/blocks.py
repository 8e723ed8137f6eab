"""What a report section is made of: prose, tables, figures, code, collapsible groups; and a reader of the
Markdown the analysis commands write (``comparison.md``, ``scale.md``, the cards table) into those blocks.

The reader knows the subset of Markdown ieegfm writes: paragraphs, ``- `` lists, ``#`` headings, fenced code and
pipe tables (``|`` rows, one ``|---|`` separator, ``\\|`` for a literal bar). Anything else stays text, escaped
when rendered: nothing in a result file can inject markup into the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Text:
    """A paragraph or a ``- `` list, in ieegfm's Markdown (inline ``code``, ``**bold**``, ``[text](link)``)."""

    markdown: str


@dataclass(frozen=True)
class Heading:
    """A heading inside a section (level 1 = the section's own level + 1)."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Table:
    """A table of strings: ``header`` of n columns, each row of n cells (short rows are padded)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        n = len(self.header)
        rows = tuple(tuple(r[:n]) + ("",) * (n - len(r)) for r in self.rows)
        object.__setattr__(self, "rows", rows)


@dataclass(frozen=True)
class Figure:
    """A PNG: ``path`` when it is a file on disk, else ``png`` (bytes made for the report, e.g. a loss curve)."""

    alt: str
    path: Path | None = None
    png: bytes | None = field(default=None, repr=False)

    def data(self) -> bytes:
        return self.png if self.png is not None else Path(self.path).read_bytes()


@dataclass(frozen=True)
class Code:
    """Preformatted text (a config file, a log); ``summary`` makes it a collapsed block with that title."""

    text: str
    summary: str | None = None


@dataclass(frozen=True)
class Details:
    """A collapsible group of blocks (one run's figures and config), open when ``open``."""

    summary: str
    blocks: tuple
    open: bool = False


Block = Text | Heading | Table | Figure | Code | Details


@dataclass
class Section:
    """One result found under the runs folder: its title, the folder it came from and its blocks."""

    title: str
    folder: Path
    blocks: list = field(default_factory=list)


_SEPARATOR = re.compile(r"^\|\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def split_row(line: str) -> tuple[str, ...]:
    """The cells of a pipe-table row, stripped, with ``\\|`` unescaped."""
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") and not s.endswith("\\|") else s
    return tuple(c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(s))


def parse_markdown(text: str) -> list:
    """Blocks of a Markdown text as ieegfm writes it.

    Parameters
    ----------
    text : str
        Markdown: paragraphs, ``- `` lists, ``#`` headings, fenced code blocks and pipe tables.

    Returns
    -------
    list of Text, Heading, Table and Code
        In the order of the text; a table's first row is its header, its ``|---|`` row dropped.
    """
    blocks: list = []
    para: list[str] = []
    lines = text.splitlines()

    def flush() -> None:
        if para:
            blocks.append(Text("\n".join(para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            blocks.append(Code("\n".join(lines[i + 1 : j])))
            i = j + 1
        elif line.lstrip().startswith("|"):
            flush()
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            rows = [split_row(r) for r in lines[i:j] if not _SEPARATOR.match(r.strip())]
            blocks.append(Table(rows[0], tuple(rows[1:])))
            i = j
        elif m := re.match(r"^(#{1,6})\s+(.*)$", line):
            flush()
            blocks.append(Heading(m.group(2).strip(), len(m.group(1))))
            i += 1
        elif not line.strip():
            flush()
            i += 1
        else:
            para.append(line)
            i += 1
    flush()
    return blocks
