"""Date de-identification of shards, as mne-bids' ``anonymize`` (``daysback``): every date moved back by whole days.

``ieegfm pack anonymize=true`` moves every written date (each chunk's ``start_time`` and ``local_time``, each
block's ``start_time`` in the manifest) back by a per-subject number of days that is never written: it comes from a
keyed hash of the subject label and its first recording date, under a random key kept outside the output
(``$IEEGFM_CACHE/anonymize.key``, default ``~/.cache/ieegfm``; created on first use, readable by its owner only), so a
rerun on the same machine writes the same bytes and nothing in the shards reveals the shift.
``anonymize_daysback=N`` uses a known, fixed shift instead (recorded in the manifest). The shift is applied to the
local calendar date, so the local clock time of every sample (day/night analyses) is kept, as are all relative
times (day indices, ``tmin``, onsets). The default secret shift is 100-150 years, so shifted dates are obviously not
real (mne-bids advises dates before 1925).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

MIN_DAYS, SPAN_DAYS = 36_525, 18_262  # 100 to 150 years


def key_path() -> Path:
    """The secret key's file: ``$IEEGFM_CACHE/anonymize.key`` (default ``~/.cache/ieegfm``)."""
    return Path(os.environ.get("IEEGFM_CACHE") or Path.home() / ".cache" / "ieegfm") / "anonymize.key"


def _key() -> bytes:
    path = key_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def secret_daysback(subject: str, first_date: dt.date) -> int:
    """The secret shift (days) of a subject: a keyed hash of its label and first recording date."""
    digest = hmac.new(_key(), f"{subject}|{first_date.isoformat()}".encode(), hashlib.sha256).digest()
    return MIN_DAYS + int.from_bytes(digest[:8], "little") % SPAN_DAYS


def shift(t: dt.datetime, days: int, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """``(utc, local)`` of ``t`` moved back ``days`` local calendar days, the local clock time kept.

    Naive ``t`` is UTC (the recordings table's convention). Near a daylight-saving change the UTC offset of the
    shifted date may differ from the original's; the local clock time is what is kept.
    """
    aware = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    local = aware.astimezone(tz)
    moved = (local.replace(tzinfo=None) - dt.timedelta(days=days)).replace(tzinfo=tz)
    return moved.astimezone(dt.timezone.utc), moved
