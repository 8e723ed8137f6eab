"""Tab-separated tables as hospitals and spreadsheet programs export them: one reader for every ``.tsv`` ieegfm reads.

BIDS tables are UTF-8 (a byte-order mark is accepted and dropped), any line ending; every problem is one
:class:`~ieegfm.errors.InputError` naming the file (and row) and what was expected.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ieegfm.errors import InputError


def read_tsv(
    path: str | Path, what: str, required: tuple[str, ...] | list[str], expected: str
) -> list[tuple[int, dict[str, str]]]:
    """Read a tab-separated table with a header line into one dict per non-empty row.

    Parameters
    ----------
    path : str | Path
        The table.
    what : str
        What the file is, for messages (``"recordings table"``, ``"events file"``).
    required : sequence of str
        Columns that must be present.
    expected : str
        What a valid file looks like, for messages (``"a BIDS events.tsv"``).

    Returns
    -------
    rows : list of (int, dict)
        The 1-based data row in the file and column -> stripped cell (``""`` for a missing trailing cell). Column
        names are stripped too; rows whose cells are all empty are dropped. Quotes are kept as text (BIDS tables
        are not quoted).

    Raises
    ------
    InputError
        File missing or unreadable, not UTF-8 text, a NUL byte or broken quoting, a missing column, a row with
        more non-empty cells than the header has columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{what} {path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at position {err.start}); "
            f"expected {expected} saved as UTF-8"
        ) from None
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read ({err.strerror or err})") from None
    if "\0" in text:
        raise InputError(f"{what} {path}: contains NUL bytes; expected {expected} (a text file)")
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    except csv.Error as err:
        raise InputError(f"{what} {path}: not a readable table ({err}); expected {expected}") from None
    header = [c.strip() for c in table[0]] if table else []
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            f"{what} {path}: missing column(s) {missing}; expected {expected} with tab-separated columns "
            f"{list(required)}, found {header}"
        )
    rows = []
    for i, cells in enumerate(table[1:], start=1):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        if any(cells[len(header) :]):
            raise InputError(
                f"{what} {path}, row {i}: {len(cells)} cells for {len(header)} columns; expected {expected} with "
                "one tab between cells"
            )
        rows.append((i, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
    return rows
