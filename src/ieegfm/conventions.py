"""Facts every layer shares, kept below all of them: the daytime hours, the pooling of a target, band row names.

The simulator (which writes files as a hospital would), the packer (which flags daytime chunks), the data pipeline
(which shapes targets) and the models (which pool their output) all read these; none of them imports another for it.
"""

from __future__ import annotations

__all__ = [
    "BANDS",
    "DAY_START",
    "DAY_END",
    "POOLINGS",
    "band_channel_name",
    "format_number",
    "is_daytime",
    "strip_band",
]

#: Hours of the local clock counted as daytime: [DAY_START, DAY_END) (08:00-22:00).
DAY_START, DAY_END = 8, 22

#: Pooling of an encoder's output and of its target: ``"mean"`` (one vector per window, averaged over time) or
#: ``"none"`` (time-resolved, one vector per target frame).
POOLINGS = ("mean", "none")

#: Brain bands a pack may hold (``preprocess.bands``), low to high past ``lfp`` (the 0.05-50 Hz signal): Hilbert
#: envelopes (edges in :data:`ieegfm.preprocess.bands.BAND_EDGES`).
BANDS = ("lfp", "delta", "theta", "alpha", "beta", "gamma", "highgamma")
_BAND_SEP = "@"


def band_channel_name(channel: str, band: str) -> str:
    """Name of ``channel``'s row in ``band``: the channel itself for ``lfp``, else ``<channel>@<band>``
    (``LA1-LA2@highgamma``). The packer names rows so; the electrode matcher reads them back (:func:`strip_band`)."""
    return channel if band == "lfp" else f"{channel}{_BAND_SEP}{band}"


def strip_band(name: str) -> str:
    """The channel of a row name (:func:`band_channel_name` inverted)."""
    base, sep, band = name.rpartition(_BAND_SEP)
    return base if sep and band in BANDS else name


def is_daytime(hour: float) -> bool:
    """Whether the local clock time ``hour`` (hours since midnight, fractional, in [0, 24)) is daytime."""
    return DAY_START <= hour < DAY_END


def format_number(value, digits: int = 3) -> str:
    """A number for a card or table (model cards, run cards): ``n/a`` for None, small p-values in significant
    digits, other floats with ``digits`` decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)
