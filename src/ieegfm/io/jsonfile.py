"""Reading a JSON file a user hands us, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from ieegfm.errors import InputError


def read_json(path: str | Path, where: str):
    """The JSON value of ``path``.

    Parameters
    ----------
    path : str | Path
    where : str
        What names the file in an error (``'metrics=…'``, the path itself).

    Raises
    ------
    InputError
        The file is missing, not UTF-8 or not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{where}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{where}: not JSON ({err})") from None
