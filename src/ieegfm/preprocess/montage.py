"""Re-referencing of sEEG / ECoG contacts: bipolar, common average, Laplacian, none [1]_ [2]_.

A montage is a linear combination of channels and the filters of :mod:`.filters` are linear
and time-invariant, so the two commute: the packer applies the montage at the output rate
(40 Hz), after :class:`~ieegfm.preprocess.StreamingPreprocessor`, which is cheaper and gives
the same result as re-referencing the raw recording.

References
----------
.. [1] arXiv 2512.15830 (bipolar montage, common average as an alternative).
.. [2] Li, G., et al. (2018). Optimal referencing for stereo-electroencephalographic (SEEG) recordings.
       NeuroImage, 183, 327-335 (the Laplacian reference: each contact minus the mean of its neighbours).
"""

from __future__ import annotations

import re

import numpy as np

from ._validate import _check_option

__all__ = ["MONTAGES", "apply_montage", "bipolar_pairs", "laplacian_neighbours", "parse_contact"]

MONTAGES = ("bipolar", "average", "laplacian", "none")
#: Contacts closer than this times the median nearest-neighbour distance are neighbours (a grid's 4 nearest).
NEIGHBOUR_RADIUS = 1.25

# Non-neural channels that clinical systems name like contacts (EKG1, DC01, ...).
_NON_NEURAL = re.compile(
    r"^(E[CK]G|EMG|EOG|RESP|SPO2|PR|PLETH|DC|TRIG|STI|STIM|PHOTIC|MARK|EVENT|OSAT|X)$",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^(EEG|SEEG|ECOG|POL)[\s_]+", re.IGNORECASE)
_SUFFIX = re.compile(r"[\s_]*-\s*(REF|AVG|AV|LE|CAR)$", re.IGNORECASE)
_CONTACT = re.compile(r"^(?P<shaft>[^\W\d_].*?)[\s_.\-]*(?P<index>\d+)$")


def parse_contact(name: str) -> tuple[str, int] | None:
    """Split a clinical contact name into its shaft (electrode) and contact index.

    Liberal about the usual spellings: ``LA1``, ``LA12``, ``L'1``, ``A'12``, ``LAH 3``,
    ``RHc10``, ``G_1``, ``EEG LA1-Ref`` (a leading ``EEG``/``SEEG``/``ECOG``/``POL`` and a
    trailing ``-Ref``/``-Avg`` are ignored). Separators (space, ``_``, ``.``, ``-``) between
    shaft and index are dropped from the shaft.

    Parameters
    ----------
    name : str
        Channel name.

    Returns
    -------
    contact : tuple of (str, int) | None
        ``(shaft, index)``, or None when the name has no trailing number or does not start
        with a letter.
    """
    if not isinstance(name, str):
        return None
    core = _SUFFIX.sub("", _PREFIX.sub("", name.strip()))
    match = _CONTACT.match(core)
    if match is None:
        return None
    return match.group("shaft"), int(match.group("index"))


def _shafts(ch_names) -> dict[str, dict[int, str]]:
    """Shaft -> contact index -> channel name (non-neural and unparsable names skipped; a repeat: the first wins)."""
    shafts: dict[str, dict[int, str]] = {}
    for name in ch_names:
        contact = parse_contact(name)
        if contact is None or _NON_NEURAL.match(contact[0]):
            continue
        shafts.setdefault(contact[0], {}).setdefault(contact[1], name)
    return shafts


def bipolar_pairs(ch_names) -> list[tuple[str, str]]:
    """Neighbouring contacts along each shaft, for a bipolar montage.

    Only contacts ``k`` and ``k + 1`` that are both present make a pair, so a missing or
    dropped contact breaks the chain (no pair is formed across it). Names that do not parse
    (:func:`parse_contact`), common non-neural names (``EKG``, ``ECG``, ``EMG``, ``EOG``,
    ``DC``, ``TRIG``, ...) and repeated contacts (the first one wins) are skipped.

    Parameters
    ----------
    ch_names : list of str
        Channel names, e.g. ``['LA1', 'LA2', 'LA3', 'LA5', 'LA6', "B'1", "B'2", 'EKG1']``.

    Returns
    -------
    pairs : list of tuple of (str, str)
        ``(anode, cathode)`` original names, ordered by shaft (in order of first appearance)
        then index, e.g. ``[('LA1', 'LA2'), ('LA2', 'LA3'), ('LA5', 'LA6'), ("B'1", "B'2")]``;
        the bipolar channel is named ``f"{anode}-{cathode}"``.
    """
    shafts = _shafts(ch_names)
    pairs = []
    for contacts in shafts.values():
        for index in sorted(contacts):
            if index + 1 in contacts:
                pairs.append((contacts[index], contacts[index + 1]))
    return pairs


def laplacian_neighbours(ch_names, positions: dict | None = None) -> dict[str, list[str]]:
    """Each contact's neighbours for a Laplacian montage: by position, or along its shaft.

    With ``positions`` for every contact (an ``electrodes.tsv``: grids and strips, whose numbering runs row by
    row), the neighbours are the contacts closer than :data:`NEIGHBOUR_RADIUS` times the median nearest-neighbour
    distance (a grid's 4 nearest, a shaft's 2). Otherwise contacts ``k - 1`` and ``k + 1`` of the same shaft, when
    present (:func:`parse_contact`; non-neural names skipped). A contact with no neighbour is left out.

    Parameters
    ----------
    ch_names : list of str
    positions : dict of str to (x, y, z), optional
        Contact name -> position (any unit; case-insensitive names).

    Returns
    -------
    neighbours : dict of str to list of str
        In the order of ``ch_names``.
    """
    ch_names = list(ch_names)
    if positions:
        lower = {str(k).lower(): v for k, v in positions.items()}
        xyz = [positions.get(n, lower.get(n.lower())) for n in ch_names]
        if len(ch_names) > 1 and all(p is not None and np.all(np.isfinite(p)) for p in xyz):
            pts = np.asarray(xyz, dtype=float)
            dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
            np.fill_diagonal(dist, np.inf)
            radius = NEIGHBOUR_RADIUS * float(np.median(dist.min(axis=1)))
            out = {}
            for i, name in enumerate(ch_names):
                near = [ch_names[j] for j in np.flatnonzero(dist[i] <= radius)]
                if near:
                    out[name] = near
            return out
    shafts = _shafts(ch_names)
    out = {}
    for name in ch_names:
        contact = parse_contact(name)
        if contact is None or shafts.get(contact[0], {}).get(contact[1]) != name:
            continue
        near = [shafts[contact[0]][k] for k in (contact[1] - 1, contact[1] + 1) if k in shafts[contact[0]]]
        if near:
            out[name] = near
    return out


def apply_montage(
    data, ch_names, montage: str = "bipolar", positions: dict | None = None
) -> tuple[np.ndarray, list[str]]:
    """Re-reference channels: bipolar pairs, common average, or unchanged.

    Apply it to the filtered signal at the output rate (montage and filters commute).

    Parameters
    ----------
    data : array-like, shape (n_chans, n_times)
        Signal (V) of the good channels named by ``ch_names``.
    ch_names : list of str
        One name per row of ``data``.
    montage : {'bipolar', 'average', 'laplacian', 'none'}
        ``'bipolar'``: differences of neighbouring contacts (:func:`bipolar_pairs`);
        ``'average'``: subtract the mean over all given channels at each time;
        ``'laplacian'``: each contact minus the mean of its neighbours (:func:`laplacian_neighbours`; the
        contact's name is kept);
        ``'none'``: return the data unchanged.
    positions : dict of str to (x, y, z), optional
        Contact positions (``laplacian``: neighbours by position when every contact has one).

    Returns
    -------
    data : ndarray, shape (n_chans_out, n_times)
        Re-referenced signal (V), same dtype as the input (float).
    ch_names : list of str
        Names of the rows, e.g. ``'LA1-LA2'`` for bipolar.

    Raises
    ------
    ValueError
        For an unknown ``montage``, a length mismatch between ``data`` and ``ch_names``,
        duplicate channel names, a bipolar montage without any pair, or a Laplacian montage without any
        neighbours (no shaft names, no positions).
    """
    _check_option("montage", montage, MONTAGES)
    data = np.asarray(data)
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    ch_names = list(ch_names)
    if data.ndim != 2 or data.shape[0] != len(ch_names):
        raise ValueError(
            f"data must have shape (n_chans={len(ch_names)}, n_times) to match ch_names, got {data.shape}."
        )
    if len(set(ch_names)) != len(ch_names):
        raise ValueError("ch_names must be unique, got duplicates.")
    if montage == "none":
        return data, ch_names
    if montage == "average":
        if not ch_names:
            raise ValueError("The 'average' montage needs at least one channel, got none.")
        return data - data.mean(axis=0, keepdims=True), ch_names
    if montage == "laplacian":
        near = laplacian_neighbours(ch_names, positions)
        if not near:
            raise ValueError(
                "The 'laplacian' montage found no neighbouring contacts: expected shaft names (e.g. 'LA1', 'LA2') "
                f"or an electrodes.tsv giving every contact's position, in ch_names={ch_names[:10]}"
                f"{'...' if len(ch_names) > 10 else ''}"
            )
        row = {name: i for i, name in enumerate(ch_names)}
        weights = np.zeros((len(near), len(ch_names)), dtype=data.dtype)
        for i, (name, others) in enumerate(near.items()):
            weights[i, row[name]] = 1.0
            weights[i, [row[o] for o in others]] = -1.0 / len(others)
        return weights @ data, list(near)
    pairs = bipolar_pairs(ch_names)
    if not pairs:
        raise ValueError(
            "The 'bipolar' montage found no pair of neighbouring contacts (e.g. 'LA1', 'LA2') "
            f"in ch_names={ch_names[:10]}{'...' if len(ch_names) > 10 else ''}; "
            "use montage='average' or 'none'."
        )
    row = {name: i for i, name in enumerate(ch_names)}
    anode = np.array([row[a] for a, _ in pairs])
    cathode = np.array([row[c] for _, c in pairs])
    return data[anode] - data[cathode], [f"{a}-{c}" for a, c in pairs]
