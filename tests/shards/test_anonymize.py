"""Date de-identification (mne-bids' daysback): dates moved back by whole days, clock time and relative times kept,
the secret shift never written, reruns byte-identical."""

import datetime as dt
import json

import pytest

from ieegfm.__main__ import main
from ieegfm.data.tar import decode_sample, tar_samples


def _chunks(shards):
    m = json.loads((shards / "manifest.json").read_text())
    metas = {}
    for entries in m["shards"].values():
        for e in entries:
            for s in tar_samples(iter([{"url": str(shards / e["name"])}])):
                meta = decode_sample(s)["meta"]
                metas[meta["block"], meta["tmin"]] = meta
    return m, metas


def _numbers(obj):
    if isinstance(obj, dict):
        return [n for v in obj.values() for n in _numbers(v)]
    if isinstance(obj, list):
        return [n for v in obj for n in _numbers(v)]
    return [obj] if isinstance(obj, int) and not isinstance(obj, bool) else []


def _all_bytes(folder):
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".ieegfm.lock")


@pytest.fixture
def packed(recordings, tmp_path, monkeypatch):
    monkeypatch.setenv("IEEGFM_CACHE", str(tmp_path / "cache"))
    outs = {}
    for name, extra in (("plain", []), ("secret", ["anonymize=true"]), ("known", ["anonymize_daysback=40000"])):
        outs[name] = tmp_path / name
        assert main(["pack", f"recordings={recordings}", f"out={outs[name]}", "timezone=Europe/Paris", *extra]) == 0
    return outs, tmp_path


def test_dates_move_back_clock_and_relative_times_stay(packed):
    outs, _ = packed
    m0, plain = _chunks(outs["plain"])
    for name in ("secret", "known"):
        m, shifted = _chunks(outs[name])
        assert shifted.keys() == plain.keys()
        days = set()
        for k, meta in shifted.items():
            a, b = dt.datetime.fromisoformat(plain[k]["local_time"]), dt.datetime.fromisoformat(meta["local_time"])
            assert (a.hour, a.minute, a.second) == (b.hour, b.minute, b.second)  # local clock time kept
            assert meta["day"] == plain[k]["day"] and meta["daytime"] == plain[k]["daytime"]
            days.add((a.date() - b.date()).days)
        assert len(days) == 1  # one shift per subject: relative times kept
        (shift,) = days
        assert m["anonymized"]["dates_shifted"] is True
        if name == "known":
            assert shift == 40000 and m["anonymized"]["daysback"] == 40000
        else:
            assert 36525 <= shift < 36525 + 18262  # 100-150 years
            assert m["anonymized"]["daysback"] == "secret (per subject, not written)"
            assert shift not in _numbers(m)  # the offset is not in the manifest
            key = (packed[1] / "cache" / "anonymize.key").read_bytes()
            assert key not in _all_bytes(outs[name])  # nor the key it comes from
        real = b"2026-03-02"
        assert real not in _all_bytes(outs[name])  # the real recording date is nowhere either
    assert b"2026-03-02" in _all_bytes(outs["plain"])  # (the search does find it where it is)
    assert m0["anonymized"]["dates_shifted"] is False


def test_a_rerun_writes_the_same_bytes(packed, recordings):
    outs, tmp = packed
    again = tmp / "again"
    assert main(["pack", f"recordings={recordings}", f"out={again}", "timezone=Europe/Paris", "anonymize=true"]) == 0
    for tar in sorted(outs["secret"].glob("*.tar")):
        assert (again / tar.name).read_bytes() == tar.read_bytes()
