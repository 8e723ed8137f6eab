"""Electrode positions from a BIDS ``electrodes.tsv`` (and its ``coordsystem.json``), matched to channel names.

BIDS-iEEG (Holdgraf et al. 2019, Sci. Data 6:102) stores one row per contact (``name``, ``x``, ``y``, ``z``, in the
units and coordinate system of the sibling ``*_coordsystem.json``: ``iEEGCoordinateSystem``, e.g.
``MNI152NLin2009aSym``, ``IXI549Space``, ``ScanRAS``; ``iEEGCoordinateUnits``, e.g. ``mm``); a contact whose position
is unknown has ``n/a``. A channel sits at its contact; a bipolar channel ``A-B`` (``preprocess.montage=bipolar``)
at the midpoint of its two contacts. Names match exactly, else ignoring case.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ieegfm.conventions import strip_band
from ieegfm.errors import InputError
from ieegfm.io.tsv import read_tsv

logger = logging.getLogger(__name__)

EXPECTED = "a BIDS electrodes.tsv (name, x, y, z; n/a where a position is unknown)"


@dataclass(frozen=True)
class Electrodes:
    """The contacts of one ``electrodes.tsv``.

    Attributes
    ----------
    positions : dict of str to tuple of float
        Contact name -> (x, y, z) in ``units``; contacts with an ``n/a`` coordinate are left out.
    space : str or None
        ``iEEGCoordinateSystem`` of the sibling ``coordsystem.json``, else the ``space-`` entity of the file name.
    units : str or None
        ``iEEGCoordinateUnits`` (``mm``, ``cm``, ``m``, ``pixels``, ``n/a``).
    source : str
        The file's name.
    """

    positions: dict[str, tuple[float, float, float]]
    space: str | None
    units: str | None
    source: str


def _coordsystem(path: Path) -> dict:
    """The sibling ``*_coordsystem.json`` of an ``*_electrodes.tsv`` (BIDS), or {}."""
    name = path.name
    if not name.endswith("_electrodes.tsv"):
        return {}
    sibling = path.with_name(name[: -len("_electrodes.tsv")] + "_coordsystem.json")
    if not sibling.is_file():
        return {}
    try:
        d = json.loads(sibling.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{sibling}: not JSON ({err}); expected a BIDS coordsystem.json") from None
    return d if isinstance(d, dict) else {}


def read_electrodes(path: str | Path) -> Electrodes:
    """Read a BIDS ``electrodes.tsv``.

    Parameters
    ----------
    path : str | Path

    Returns
    -------
    Electrodes

    Raises
    ------
    InputError
        Missing file or columns (:func:`ieegfm.io.tsv.read_tsv`); a coordinate that is neither a number nor
        ``n/a``; a contact named twice (names the file and row).
    """
    path = Path(path)
    rows = read_tsv(path, "electrodes file", ("name", "x", "y", "z"), EXPECTED)
    positions: dict[str, tuple[float, float, float]] = {}
    for i, r in rows:
        name = r["name"]
        if name in positions:
            raise InputError(f"electrodes file {path}, row {i}: contact {name!r} listed twice; expected {EXPECTED}")
        cells = [r[k] for k in ("x", "y", "z")]
        if any(c.lower() in ("n/a", "") for c in cells):
            continue
        try:
            xyz = tuple(float(c) for c in cells)
        except ValueError:
            raise InputError(
                f"electrodes file {path}, row {i}: coordinates {cells} of {name!r} are not numbers; expected {EXPECTED}"
            ) from None
        if not all(math.isfinite(v) for v in xyz):
            raise InputError(f"electrodes file {path}, row {i}: coordinates {cells} of {name!r} are not finite")
        positions[name] = xyz  # type: ignore[assignment]
    coords = _coordsystem(path)
    space = coords.get("iEEGCoordinateSystem")
    if space is None:
        m = re.search(r"_space-([A-Za-z0-9]+)", path.name)
        space = m.group(1) if m else None
    return Electrodes(positions, space, coords.get("iEEGCoordinateUnits"), path.name)


def contact_position(name: str, electrodes: Electrodes) -> tuple[float, float, float] | None:
    """Where a channel sits: its contact, or the midpoint of the two contacts of a bipolar ``A-B`` channel; None
    when a contact is unknown."""
    lower = {k.lower(): v for k, v in electrodes.positions.items()}

    def one(n: str):
        return electrodes.positions.get(n) or lower.get(n.lower())

    name = strip_band(name)  # a band's row sits where its channel does
    found = one(name)
    if found is not None:
        return found
    if "-" in name:
        a, _, b = name.partition("-")
        pa, pb = one(a), one(b)
        if pa is not None and pb is not None:
            return tuple((u + v) / 2 for u, v in zip(pa, pb))  # type: ignore[return-value]
    return None


def channel_coordinates(ch_names: list[str], path: str | Path) -> dict:
    """The ``coordinates`` of a manifest subject: each channel's position from ``electrodes.tsv``.

    Parameters
    ----------
    ch_names : list of str
        Channels after the montage, in the order stored.
    path : str | Path
        BIDS ``electrodes.tsv``.

    Returns
    -------
    coordinates : dict
        ``positions`` (per channel, [x, y, z] or None), ``space``, ``units``, ``electrodes`` (file name),
        ``n_missing``.

    Raises
    ------
    InputError
        See :func:`read_electrodes`.
    """
    electrodes = read_electrodes(path)
    positions = [contact_position(n, electrodes) for n in ch_names]
    missing = [n for n, p in zip(ch_names, positions) if p is None]
    if missing:
        logger.warning(
            "%s: no position for %d of %d channel(s) (%s%s)",
            path,
            len(missing),
            len(ch_names),
            ", ".join(missing[:5]),
            ", ..." if len(missing) > 5 else "",
        )
    return {
        "positions": [None if p is None else [round(float(v), 4) for v in p] for p in positions],
        "space": electrodes.space,
        "units": electrodes.units,
        "electrodes": electrodes.source,
        "n_missing": len(missing),
    }


#: Millimetres per coordinate unit (BIDS ``iEEGCoordinateUnits``); other units are taken as mm.
MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def manifest_positions(manifest, where: str):
    """Each subject's channel positions in mm, laid out as the encoder's input: (n_subjects, n_chans_max, 3),
    NaN for unknown channels and padding (``model.input=spatial``).

    Parameters
    ----------
    manifest : Manifest
    where : str
        Names the shards in errors.

    Returns
    -------
    numpy.ndarray, shape (n_subjects, n_chans_max, 3), float32

    Raises
    ------
    InputError
        A subject without electrode coordinates (names it and what to add), or without a single known position.
    """
    import numpy as np

    out = np.full((len(manifest.subjects), manifest.n_chans_max, 3), np.nan, dtype=np.float32)
    for label, s in manifest.subjects.items():
        c = s.coordinates
        if not c or not any(p is not None for p in c.get("positions", ())):
            raise InputError(
                f"{where}: model.input=spatial needs electrode positions, and subject {label!r} has none; expected "
                "an electrodes column in the recordings table naming its BIDS electrodes.tsv (then pack again)"
            )
        scale = MM_PER_UNIT.get(str(c.get("units") or "mm").lower(), 1.0)
        for j, p in enumerate(c["positions"]):
            if p is not None:
                out[s.index, j] = np.asarray(p, dtype=np.float32) * scale
    return out
