"""The simulated default dataset: files, formats, schedule and a ground truth that is really in the data."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import mne
import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import butter, hilbert, sosfiltfilt

from ieegfm.config import SimulateConfig, load_config
from ieegfm.errors import ConfigError
from ieegfm.simulate import plan_blocks, simulate
from ieegfm.simulate.stimulus import stimulus_features

TINY = ["hours=0.1", "days=2", "block_minutes=3", "task_minutes=2", "task_blocks=2"]


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    cfg = load_config("simulate", overrides=[f"out={out}", *TINY])  # a DictConfig, as the CLI passes
    return simulate(cfg)


def test_layout_and_table(tiny):
    out = tiny.parent
    rows = _read_tsv(tiny)
    assert list(rows[0]) == ["subject", "session", "ieeg", "audio", "start_time", "words", "electrodes"]
    assert [r["session"] for r in rows] == ["day1", "day2"]
    # contact positions: a BIDS electrodes.tsv (+ coordsystem.json), every contact, 3.5 mm apart along a shaft
    from ieegfm.io.electrodes import read_electrodes

    e = read_electrodes(out / rows[0]["electrodes"])
    truth = json.loads((out / "truth.json").read_text())
    contacts = [n for n, t in zip(truth["channel_names"], truth["channel_types"]) if t == "seeg"]
    assert list(e.positions) == contacts and e.space == "Other" and e.units == "mm"
    steps = [np.linalg.norm(np.subtract(e.positions[a], e.positions[b])) for a, b in zip(contacts, contacts[1:])
             if a.rstrip("0123456789") == b.rstrip("0123456789")]  # fmt: skip
    assert np.allclose(steps, 3.5, atol=2e-3)
    assert truth["electrodes"]["positions_mm"][0] == pytest.approx(list(e.positions[contacts[0]]), abs=1e-3)
    for r in rows:
        for key in ("ieeg", "audio", "words"):
            assert (out / r[key]).is_file(), r[key]
        assert (out / r["ieeg"].replace("_ieeg.edf", "_channels.tsv")).is_file()
    assert rows[0]["ieeg"] == "sub-sim01/ses-day1/ieeg/sub-sim01_ses-day1_run-01_ieeg.edf"
    assert rows[0]["start_time"] == "2026-03-02T08:00:00+00:00"
    assert rows[1]["start_time"] == "2026-03-03T07:57:00+00:00"  # day 2 shifted back by hours/days
    truth = json.loads((out / "truth.json").read_text())
    assert truth["seed"] == 0 and truth["config"]["hours"] == 0.1
    assert [b["daytime"] for b in truth["blocks"]] == [True, False]


def test_edf_and_wav(tiny):
    out = tiny.parent
    truth = json.loads((out / "truth.json").read_text())
    for r in _read_tsv(tiny):
        raw = mne.io.read_raw_edf(out / r["ieeg"], verbose="error")
        assert raw.info["meas_date"] == dt.datetime.fromisoformat(r["start_time"])
        assert raw.ch_names == truth["channel_names"]
        assert raw.ch_names[-4:] == ["EKG1", "EKG2", "DC01", "DC02"] and raw.ch_names[0] == "LA1"
        assert raw.info["sfreq"] == 1024.0 and raw.n_times == 180 * 1024
        sfreq, pcm = wavfile.read(out / r["audio"])
        assert sfreq == 16000 and pcm.dtype == np.int16 and pcm.ndim == 1
        assert pcm.shape[0] / sfreq == raw.n_times / raw.info["sfreq"]
        words = _read_tsv(out / r["words"])
        assert all(0 <= float(w["onset"]) and float(w["onset"]) + float(w["duration"]) <= 180 for w in words)


def test_channels_tsv_and_artefacts(tiny):
    out = tiny.parent
    truth = json.loads((out / "truth.json").read_text())
    row = _read_tsv(tiny)[0]
    chans = _read_tsv(out / row["ieeg"].replace("_ieeg.edf", "_channels.tsv"))
    assert list(chans[0]) == ["name", "type", "units", "low_cutoff", "high_cutoff", "status", "status_description"]
    types = {c["name"]: c["type"] for c in chans}
    assert types["EKG1"] == "ECG" and types["DC02"] == "MISC" and types["LA1"] == "SEEG"
    bad = truth["brain"]["bad_channels"]
    flat = next(n for n, b in bad.items() if b["why"] == "flat")
    noisy = next(n for n, b in bad.items() if b["why"] != "flat")
    status = {c["name"]: c["status"] for c in chans}
    assert status[flat] == "good" and status[noisy] == "bad"
    assert sum(s == "bad" for s in status.values()) == 1
    raw = mne.io.read_raw_edf(out / row["ieeg"], preload=True, verbose="error")
    data = raw.get_data()
    std = data.std(axis=1)
    seeg = [i for i, n in enumerate(raw.ch_names) if types[n] == "SEEG" and n not in bad]
    assert std[raw.ch_names.index(flat)] < 1e-9
    assert std[raw.ch_names.index(noisy)] > 5 * np.median(std[seeg])
    assert 20e-6 < np.median(std[seeg]) < 150e-6  # ~50 uV background
    assert std[raw.ch_names.index("EKG1")] > 1e-4  # mV-scale ECG
    # line noise at 60, 120, 180 Hz stands out of the spectrum
    psd = np.abs(np.fft.rfft(data[seeg[0]])) ** 2
    freqs = np.fft.rfftfreq(raw.n_times, 1 / raw.info["sfreq"])
    for f in (60, 120, 180):
        peak = psd[np.argmin(np.abs(freqs - f))]
        near = np.median(psd[(np.abs(freqs - f) > 2) & (np.abs(freqs - f) < 10)])
        assert peak > 100 * near


def test_speech_fraction_day_above_night(tiny):
    truth = json.loads((tiny.parent / "truth.json").read_text())
    day, night = truth["blocks"]
    assert day["daytime"] and not night["daytime"]
    assert day["speech_fraction"] > night["speech_fraction"]
    assert day["n_words"] > night["n_words"] > 0


def _lagged(x: np.ndarray, lags: range) -> np.ndarray:
    cols = []
    for lag in lags:
        shifted = np.zeros_like(x)
        shifted[:, lag:] = x[:, : x.shape[1] - lag]
        cols.append(shifted)
    return np.concatenate(cols).T


def test_responsive_contacts_follow_the_audio(tiny):
    """Held-out R^2 of a lagged linear model of the audio features is high only on the responsive contacts;
    their high-gamma envelope follows the audio envelope."""
    out = tiny.parent
    truth = json.loads((out / "truth.json").read_text())
    row = _read_tsv(tiny)[0]  # the daytime block
    sfreq_a, pcm = wavfile.read(out / row["audio"])
    feats, frame_rate = stimulus_features(pcm / 32768.0, sfreq_a)
    raw = mne.io.read_raw_edf(out / row["ieeg"], preload=True, verbose="error")
    sfreq = raw.info["sfreq"]
    responsive = set(truth["brain"]["responsive"])
    skip = set(truth["brain"]["bad_channels"])
    contacts = [n for n in truth["brain"]["contacts"] if n not in skip]
    data = raw.get_data(picks=contacts)
    lf = sosfiltfilt(butter(4, [0.5, 15], btype="band", fs=sfreq, output="sos"), data, axis=1)
    t_frames = np.arange(feats.shape[1]) / frame_rate
    t_brain = np.arange(raw.n_times) / sfreq
    lf = np.array([np.interp(t_frames, t_brain, x) for x in lf])
    z = (feats - feats.mean(1, keepdims=True)) / feats.std(1, keepdims=True)
    design = np.c_[_lagged(z, range(0, 60, 5)), np.ones(z.shape[1])]
    half = z.shape[1] // 2
    r2 = {}
    for name, y in zip(contacts, lf):
        train = design[:half]
        coef = np.linalg.solve(train.T @ train + 100.0 * np.eye(train.shape[1]), train.T @ y[:half])  # ridge
        resid = y[half:] - design[half:] @ coef
        r2[name] = 1 - resid.var() / y[half:].var()
    r_resp = [r2[n] for n in contacts if n in responsive]
    r_other = [r2[n] for n in contacts if n not in responsive]
    assert min(r_resp) > 0.1 and max(r_other) < 0.05, (r_resp, r_other)
    # high gamma: Hilbert envelope of 70-170 Hz vs the lagged audio envelope
    hg = sosfiltfilt(butter(4, [70, 170], btype="band", fs=sfreq, output="sos"), data, axis=1)
    hg_env = np.abs(hilbert(hg, axis=1))
    hg_env = np.array([np.interp(t_frames, t_brain, x) for x in hg_env])
    env = np.roll(z[-1], 15)  # ~150 ms lag
    corr = {n: np.corrcoef(e, env)[0, 1] for n, e in zip(contacts, hg_env)}
    assert np.mean([corr[n] for n in contacts if n in responsive]) > 0.3
    assert max(abs(corr[n]) for n in contacts if n not in responsive) < 0.15


def test_same_seed_same_bytes(tmp_path):
    cfg = SimulateConfig(
        out=str(tmp_path / "a"),
        hours=2 / 60,
        days=2,
        block_minutes=0.5,
        seed=3,
        n_shafts=2,
        contacts_per_shaft=4,
        task_minutes=0,
    )
    tsv = simulate(cfg)  # a plain dataclass works too
    files = sorted(p for p in tsv.parent.rglob("*") if p.is_file())
    # table, truth, electrodes + coordsystem, 2 days x 2 blocks x 4 files; BIDS: dataset_description, 2 scans.tsv
    assert len(files) == 1 + 1 + 2 + 2 * 2 * 4 + 1 + 2
    first = {p: p.read_bytes() for p in files}
    simulate(cfg)
    assert {p: p.read_bytes() for p in files} == first
    other = simulate(SimulateConfig(**{**cfg.__dict__, "seed": 4, "out": str(tmp_path / "b")}))
    a_edf = next(p for p in files if p.suffix == ".edf")
    assert (other.parent / a_edf.relative_to(tsv.parent)).read_bytes() != first[a_edf]
    # adding a task session leaves every ambient file as it was (its random streams are spawned after)
    with_task = simulate(
        SimulateConfig(**{**cfg.__dict__, "task_minutes": 0.5, "task_blocks": 1, "out": str(tmp_path / "c")})
    )
    for p in files:
        if p.name != "truth.json":
            assert (with_task.parent / p.relative_to(tsv.parent)).read_bytes() == first[p], p
    assert (with_task.parent / "recordings_task.tsv").is_file()


def test_default_schedule_has_day_and_night():
    cfg = SimulateConfig()
    blocks = plan_blocks(cfg.hours, cfg.days, cfg.block_minutes, cfg.start)
    assert len(blocks) == 8 and all(b.duration == 1800 for b in blocks)
    assert [b.daytime for b in blocks] == [True] * 4 + [False] * 4
    assert blocks[4].start == dt.datetime(2026, 3, 3, 6, tzinfo=dt.timezone.utc)
    for a, b in zip(blocks, blocks[1:]):
        if a.day == b.day:  # consecutive within a day
            assert b.start == a.start + dt.timedelta(seconds=a.duration)
    week = plan_blocks(14, 7, 60, "2026-03-02T08:00:00")
    assert [b.start.hour for b in week if b.run == 1] == [8, 6, 4, 2, 0, 22, 20]


@pytest.mark.parametrize(
    "override, key",
    [
        ("hours=0", "hours"),
        ("days=0", "days"),
        ("start=yesterday", "start"),
        ("responsive_fraction=1.5", "responsive_fraction"),
        ("subjects=0", "subjects"),
        ("subjects=9", "subjects=9: patient 9 would have fewer than 1 shaft"),
    ],
)
def test_bad_config_names_the_key(tmp_path, override, key):
    cfg = load_config("simulate", overrides=[f"out={tmp_path}", override])
    with pytest.raises(ConfigError, match=key):
        simulate(cfg)


def test_prime_names(tmp_path):
    from ieegfm.simulate.brain import make_layout

    layout = make_layout(4, 3, prime_names=True)
    assert layout.ch_names[:7] == ["A1", "A2", "A3", "H1", "H2", "H3", "A'1"]


def test_task_session_narrated_speech_with_sentence_events(tiny):
    out = tiny.parent
    rows = _read_tsv(out / "recordings_task.tsv")
    assert [r["session"] for r in rows] == ["task", "task"] and list(rows[0])[-2:] == ["events", "electrodes"]
    truth = json.loads((out / "truth.json").read_text())
    assert truth["task"]["narrator"]["name"] not in {v["name"] for v in truth["voices"]}  # another voice
    ambient_end = max(
        dt.datetime.fromisoformat(b["start_time"]) + dt.timedelta(seconds=b["duration_s"]) for b in truth["blocks"]
    )
    for r, block in zip(rows, truth["task"]["blocks"]):
        assert block["speech_fraction"] >= 0.9, block  # continuous narration
        assert dt.datetime.fromisoformat(r["start_time"]) > ambient_end
        events = _read_tsv(out / r["events"])
        assert list(events[0]) == ["onset", "duration", "trial_type", "value"]
        assert {e["trial_type"] for e in events} == {"sentence"} and len(events) == block["n_sentences"] > 5
        onsets = [float(e["onset"]) for e in events]
        ends = [float(e["onset"]) + float(e["duration"]) for e in events]
        assert all(a < b for a, b in zip(ends[:-1], onsets[1:])) and ends[-1] <= block["duration_s"]
        words = _read_tsv(out / r["words"])
        first_words = " ".join(w["word"] for w in words[:3])
        assert events[0]["value"].startswith(first_words.split()[0])
        raw = mne.io.read_raw_edf(out / r["ieeg"], verbose="error")
        assert raw.ch_names == truth["channel_names"]  # same electrodes as the ambient session


def test_semantic_component_drives_only_its_contacts_at_its_snr(tiny, tmp_path):
    """The task session's semantic drive (truth.json task.semantic) is the only difference between a simulation with
    and without it, confined to the listed contacts, at the documented SNR (std over the first block / background
    std of the contact, times the day's gain)."""
    out = tiny.parent
    truth = json.loads((out / "truth.json").read_text())
    sem = truth["task"]["semantic"]
    assert sem["snr"] == 1.0 and len(sem["contacts"]) == round(0.25 * len(truth["brain"]["contacts"]))
    bad = set(truth["brain"]["bad_channels"])
    assert not bad & set(sem["contacts"])
    plain = simulate(load_config("simulate", overrides=[f"out={tmp_path}", *TINY, "semantic_snr=0"])).parent
    assert json.loads((plain / "truth.json").read_text())["task"]["semantic"] is None
    rows = _read_tsv(out / "recordings_task.tsv")
    a = mne.io.read_raw_edf(out / rows[0]["ieeg"], verbose="error").get_data()
    b = mne.io.read_raw_edf(plain / rows[0]["ieeg"], verbose="error").get_data()
    names = truth["channel_names"]
    diff_std = (a - b).std(axis=1)
    driven = [names.index(c) for c in sem["contacts"]]
    others = [i for i in range(len(truth["brain"]["contacts"])) if i not in driven]
    assert diff_std[others].max() < 1e-6  # EDF quantisation only
    day = truth["task"]["blocks"][0]["day_index"]
    for c, i in zip(sem["contacts"], driven):
        expected = sem["snr"] * truth["brain"]["background"]["std_v"][c] * truth["brain"]["gain_drift"]["gain"][c][day]
        assert diff_std[i] == pytest.approx(expected, rel=0.02), c
    # ambient files untouched by the semantic component
    amb = _read_tsv(out / "recordings.tsv")[0]["ieeg"]
    assert (out / amb).read_bytes() == (plain / amb).read_bytes()


def test_the_simulator_reads_its_schema():
    """One set of defaults (the schema's) and one set of checks, whatever object carries the config."""
    from types import SimpleNamespace

    from ieegfm.config import SimulateConfig
    from ieegfm.simulate import simulate_config

    partial = simulate_config(SimpleNamespace(out="x", hours=1.0))
    assert partial == SimulateConfig(out="x", hours=1.0)  # task_minutes 24, task_blocks 8, semantic_snr 1.0
    assert (partial.task_minutes, partial.task_blocks, partial.semantic_snr) == (24.0, 8, 1.0)
    cli = simulate_config(load_config("simulate", overrides=["out=x", "hours=1"]))
    assert isinstance(cli, SimulateConfig) and cli == partial
    for bad, message in (
        ("semantic_snr=-1", "semantic_snr=-1.0: expected >= 0"),
        ("subject=sim_01", "subject='sim_01': a BIDS label must be alphanumeric"),
        ("responsive_fraction=1.5", "responsive_fraction=1.5: expected a fraction in [0, 1]"),
        ("audio_sfreq=4000", "audio_sfreq=4000: expected at least 8000 Hz"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            simulate_config(load_config("simulate", overrides=["out=x", bad]))
        with pytest.raises(ConfigError, match=re.escape(message)):
            SimulateConfig(**{bad.split("=")[0]: type(getattr(partial, bad.split("=")[0]))(bad.split("=")[1])})


def test_a_cohort_of_patients_with_different_implants(tmp_path, tiny):
    """subjects=3: one table for three patients, each with its own implant and seed; patient 1 is the single
    patient of the same seed, file for file."""
    over = ["hours=0.1", "days=2", "block_minutes=3", "task_minutes=2", "task_blocks=2"]
    tsv = simulate(load_config("simulate", overrides=[f"out={tmp_path}", *over, "subjects=3"]))
    rows = _read_tsv(tsv)
    assert [r["subject"] for r in rows] == ["sim01", "sim01", "sim02", "sim02", "sim03", "sim03"]
    assert [r["subject"] for r in _read_tsv(tmp_path / "recordings_task.tsv")] == ["sim01"] * 2 + ["sim02"] * 2 + [
        "sim03"
    ] * 2
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["config"]["subjects"] == 3 and list(truth["subjects"]) == ["sim01", "sim02", "sim03"]
    n_chans = [len(truth["subjects"][s]["channel_names"]) for s in ("sim01", "sim02", "sim03")]
    assert n_chans == [36, 28, 44]  # 4, 3 and 5 shafts of 8 contacts, and 4 non-neural channels each
    assert [truth["subjects"][s]["seed"] for s in ("sim01", "sim02", "sim03")] == [0, 1, 2]
    for r in rows:
        raw = mne.io.read_raw_edf(tmp_path / r["ieeg"], verbose="error")
        assert raw.ch_names == truth["subjects"][r["subject"]]["channel_names"]
    single = tiny.parent
    for name in ("sub-sim01/ses-day1/ieeg/sub-sim01_ses-day1_run-01_ieeg.edf",
                 "sub-sim01/ses-day1/audio/sub-sim01_ses-day1_run-01_audio.wav"):  # fmt: skip
        assert (tmp_path / name).read_bytes() == (single / name).read_bytes()
    a = mne.io.read_raw_edf(tmp_path / rows[0]["ieeg"], verbose="error").get_data()
    b = mne.io.read_raw_edf(tmp_path / rows[2]["ieeg"], verbose="error").get_data()
    assert a.shape[0] != b.shape[0]


def test_shared_responses_follow_the_place_in_every_patient():
    """simulate shared_responses=true: a contact's weights and lag are a smooth function of its position, the same
    for every patient (an anatomical map), so two patients' contacts at the same place respond alike."""
    from ieegfm.simulate.brain import BrainModel, contact_positions, make_layout, shared_map

    p = np.array([[10.0, -20.0, 5.0], [11.0, -20.0, 5.0], [-50.0, 30.0, -20.0]])
    w, lag = shared_map(p, 13)
    assert np.allclose(np.linalg.norm(w, axis=1), 1) and ((0.08 <= lag) & (lag <= 0.25)).all()
    assert w[0] @ w[1] > 0.95 and abs(w[0] @ w[2]) < w[0] @ w[1]  # 1 mm apart: alike; far apart: not
    layout = make_layout(4, 8)
    for seed in (0, 1):  # two patients: their own draws, the same map
        pos = contact_positions(layout, seed)
        kw = dict(sfreq=512.0, n_features=13, frame_rate=100.0, n_days=1, responsive_fraction=0.4, snr=1.0,
                  hg_snr=3.0, line_freq=60.0)  # fmt: skip
        m = BrainModel(layout, rng=np.random.default_rng(seed), positions=pos, **kw)
        ref, ref_lag = shared_map(pos[m.responsive], 13)
        assert np.allclose(m.weights, ref) and np.allclose(m.lag, ref_lag)
        plain = BrainModel(layout, rng=np.random.default_rng(seed), **kw)  # the default: drawn per patient
        assert np.array_equal(plain.responsive, m.responsive) and not np.allclose(plain.weights, m.weights)


def test_named_targets_place_a_shaft_alike_in_every_patient():
    """simulate target_jitter_mm=: a shaft of a given name lands within a few mm of the same place in every patient
    (the plan depends on the name only); the default draws every patient's entries anywhere (and is unchanged)."""
    from ieegfm.simulate.brain import contact_positions, make_layout

    four, five = make_layout(4, 8), make_layout(5, 8)
    a, b = contact_positions(four, 0, target_jitter_mm=2.0), contact_positions(five, 1, target_jitter_mm=2.0)
    same = np.linalg.norm(a - b[:32], axis=1)  # LA, LH, RA, RH in both implants, contact by contact
    assert np.median(same) < 6.0 and same.max() < 15.0
    assert not np.allclose(a, b[:32])  # each patient's own placement
    primed = contact_positions(make_layout(4, 8, prime_names=True), 0, target_jitter_mm=2.0)
    assert np.allclose(primed, a)  # A' is RA: the same target
    far = np.linalg.norm(contact_positions(four, 0) - contact_positions(five, 1)[:32], axis=1)
    assert np.median(far) > 2 * np.median(same)
    exact = contact_positions(four, 0, target_jitter_mm=0.0)
    assert np.allclose(exact, contact_positions(five, 1, target_jitter_mm=0.0)[:32])
