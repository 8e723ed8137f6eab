"""The block schedule of a simulated patient: when each ambient block and each task block is recorded.

``hours`` are split evenly over ``days`` calendar days; each day is cut into consecutive blocks of
``block_minutes`` (the last one shorter if needed; lengths in whole seconds). Day ``d`` (0-based) starts at
``start + d * 24 h + d * day_shift_hours``; the default shift ``-hours / days`` makes the days tile the clock
backwards from ``start``. A block is daytime when its midpoint lies in 08:00-22:00 UTC
(:func:`ieegfm.conventions.is_daytime`). The task session follows the last ambient block by one hour.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ieegfm.conventions import is_daytime
from ieegfm.errors import ConfigError

__all__ = ["BlockPlan", "parse_start", "plan_blocks", "plan_task"]


@dataclass(frozen=True)
class BlockPlan:
    """One block of the schedule.

    Attributes
    ----------
    day : int
        Recording day (1-based), the ``ses-day<N>`` label.
    run : int
        Block index within the day (1-based), the ``run-<RR>`` label.
    start : datetime
        Wall-clock start (UTC).
    duration : float
        Length (s), a whole number of seconds.
    daytime : bool
        Midpoint within 08:00-22:00 UTC.
    """

    day: int
    run: int
    start: dt.datetime
    duration: float
    daytime: bool


def parse_start(value: str) -> dt.datetime:
    """``value`` (ISO 8601) as an aware UTC date-time; UTC when it has no offset.

    Raises
    ------
    ConfigError
        Not an ISO 8601 date-time.
    """
    try:
        start = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"start={value!r}: expected an ISO 8601 date-time such as 2026-03-02T08:00:00") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.timezone.utc)
    return start.astimezone(dt.timezone.utc)


def plan_blocks(
    hours: float, days: int, block_minutes: float, start: str, day_shift_hours: float | None = None
) -> list[BlockPlan]:
    """The block schedule (see the module docstring for the rule).

    Parameters
    ----------
    hours : float
        Total recorded hours.
    days : int
        Number of calendar days.
    block_minutes : float
        Block length (min).
    start : str
        ISO 8601 start of the first block (UTC when no offset is given).
    day_shift_hours : float | None
        Clock shift of each day's start relative to the previous day (h); default ``-hours / days``.

    Returns
    -------
    blocks : list of BlockPlan

    Raises
    ------
    ConfigError
        Non-positive ``hours``, ``days`` or ``block_minutes``, or an unparsable ``start``.
    """
    if not hours > 0:
        raise ConfigError(f"hours={hours}: expected a positive number of hours")
    if int(days) < 1:
        raise ConfigError(f"days={days}: expected at least 1")
    if not block_minutes > 0:
        raise ConfigError(f"block_minutes={block_minutes}: expected a positive block length (min)")
    t0 = parse_start(start)
    per_day = int(round(hours * 3600.0 / days))
    block_s = max(1, int(round(block_minutes * 60.0)))
    if per_day < 1:
        raise ConfigError(f"hours={hours}, days={days}: less than one second per day")
    shift = -hours / days if day_shift_hours is None else float(day_shift_hours)
    blocks = []
    for d in range(int(days)):
        day_start = t0 + dt.timedelta(hours=24.0 * d + shift * d)
        day_start = day_start.replace(microsecond=0)
        n_full, rest = divmod(per_day, block_s)
        lengths = [block_s] * n_full + ([rest] if rest else [])
        offset = 0
        for r, length in enumerate(lengths):
            start_r = day_start + dt.timedelta(seconds=offset)
            mid = start_r + dt.timedelta(seconds=length / 2)
            hour = mid.hour + mid.minute / 60 + mid.second / 3600
            blocks.append(
                BlockPlan(
                    day=d + 1,
                    run=r + 1,
                    start=start_r,
                    duration=float(length),
                    daytime=is_daytime(hour),
                )
            )
            offset += length
    return blocks


def plan_task(ambient: list[BlockPlan], minutes: float, n_blocks: int) -> list[BlockPlan]:
    """The task session's blocks: ``minutes`` cut into ``n_blocks`` equal blocks (whole seconds), starting one hour
    after the last ambient block ends, on that block's recording day (same electrodes, same gain drift).

    Raises
    ------
    ConfigError
        Negative ``minutes``, or fewer than 1 block for a positive length, or blocks shorter than 30 s.
    """
    if minutes < 0:
        raise ConfigError(f"task_minutes={minutes}: expected >= 0 (0: no task session)")
    if minutes == 0:
        return []
    if int(n_blocks) < 1:
        raise ConfigError(f"task_blocks={n_blocks}: expected at least 1")
    length = int(round(minutes * 60.0 / int(n_blocks)))
    if length < 30:
        raise ConfigError(f"task_minutes={minutes}, task_blocks={n_blocks}: blocks of {length} s; expected >= 30 s")
    last = ambient[-1]
    t0 = last.start + dt.timedelta(seconds=last.duration + 3600)
    return [
        BlockPlan(day=last.day, run=r + 1, start=t0 + dt.timedelta(seconds=r * length), duration=float(length),
                  daytime=is_daytime((t0 + dt.timedelta(seconds=r * length)).hour))
        for r in range(int(n_blocks))
    ]  # fmt: skip
