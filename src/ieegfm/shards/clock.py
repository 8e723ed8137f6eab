"""The recording site's clock: when a block starts, local time, day indices, daytime, and dates as written.

Times in a recordings table without an offset are UTC; the site's IANA ``timezone`` (``ieegfm pack timezone=``)
gives local clock time, from which day indices (local calendar days since a subject's first block) and the
daytime flag follow. With ``anonymize=true`` / ``anonymize_daysback=N`` the dates written move back by whole local
days (:mod:`ieegfm.shards.deidentify`); the local clock time and every relative time are kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ieegfm.conventions import is_daytime
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.ieeg import IEEGHeader
from ieegfm.io.recordings import HEADER_TIME, Block
from ieegfm.shards import deidentify


def local_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` of the recording site.

    Raises
    ------
    ConfigError
        Not a time zone name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"timezone={name!r}: not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)"
        ) from None


def block_start(block: Block, header: IEEGHeader) -> dt.datetime:
    """When a block's iEEG starts: its file header's ``meas_date``, else the table's ``start_time`` (the audio's);
    for a row with an ``audio_onset`` (a stimulus; BIDS), its ``start_time`` (``acq_time``) first.

    Every sample time written (chunk ``start_time``, day index, daytime, split order) counts from this.

    Raises
    ------
    InputError
        Neither the row (``start_time=header``) nor the file header gives a time.
    """
    if block.audio_onset is not None and block.start_time is not None:
        return block.start_time
    start = header.meas_date or block.start_time
    if start is None:
        raise InputError(
            f"{block.ieeg}: start_time={HEADER_TIME} but the file header holds no measurement date; expected a "
            "start_time (ISO 8601) in its row (BIDS: scans.tsv acq_time)"
        )
    return start


@dataclass(frozen=True)
class SiteClock:
    """Local time, day indices and written dates for the subjects of one pack.

    Attributes
    ----------
    tz : ZoneInfo
        The site's time zone.
    first_day : dict
        Subject -> local calendar date of its first block (day index 0).
    daysback : dict | None
        Subject -> days every written date moves back (None: dates as recorded).
    """

    tz: ZoneInfo
    first_day: dict[str, dt.date]
    daysback: dict[str, int] | None = None

    @classmethod
    def for_starts(
        cls, starts: dict[str, list[dt.datetime]], tz: ZoneInfo, anonymize: bool = False, daysback: int | None = None
    ) -> SiteClock:
        """The clock of subjects whose blocks start at ``starts`` (subject -> block starts).

        ``anonymize``: a secret per-subject shift (:func:`~ieegfm.shards.deidentify.secret_daysback`); ``daysback``:
        this known shift for every subject (wins over ``anonymize``).
        """
        local = cls(tz, {})
        first = {s: min(local.local(t).date() for t in ts) for s, ts in starts.items()}
        shift = None
        if daysback is not None:
            shift = {s: int(daysback) for s in starts}
        elif anonymize:
            shift = {s: deidentify.secret_daysback(s, first[s]) for s in starts}
        return cls(tz, first, shift)

    def local(self, t: dt.datetime) -> dt.datetime:
        """``t`` on the site's clock (naive times are UTC)."""
        return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).astimezone(self.tz)

    def day(self, subject: str, t: dt.datetime) -> int:
        """Local calendar days from the subject's first block to ``t``."""
        return (self.local(t).date() - self.first_day[subject]).days

    def daytime(self, t: dt.datetime) -> bool:
        """Whether ``t`` falls in local daytime, [DAY_START, DAY_END) h (:mod:`ieegfm.conventions`)."""
        return is_daytime(self.local(t).hour)

    def published(self, subject: str, t: dt.datetime) -> tuple[str, str]:
        """``(start_time, local_time)`` of ``t`` as written (ISO 8601), moved back when anonymising."""
        if self.daysback is None:
            return t.isoformat(), self.local(t).isoformat()
        utc, loc = deidentify.shift(t, self.daysback[subject], self.tz)
        return utc.isoformat(), loc.isoformat()
