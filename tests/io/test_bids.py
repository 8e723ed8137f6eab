"""A BIDS-iEEG root as input: discovery from sidecars (mne-bids), the table it writes, its bad input, and the
same shards as the recordings table of the same files."""

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import pytest

from ieegfm.__main__ import main
from ieegfm.errors import ConfigError, InputError
from ieegfm.io.bids import AudioSource, discover_blocks
from ieegfm.io.recordings import read_recordings, write_recordings

HERE = Path(__file__).parent / "bids"
FILE = AudioSource()


def _run(root: Path, sub="01", ses="01", task="rest", run="01", acq_time="2026-03-02T09:00:00", audio=True):
    """A run's files: placeholder data (discovery never reads it), channels.tsv, scans.tsv row, audio."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.10.0"}')
    folder = root / f"sub-{sub}" / f"ses-{ses}" / "ieeg"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{sub}_ses-{ses}_task-{task}_run-{run}"
    (folder / f"{stem}_ieeg.edf").write_bytes(b"0" * 256)
    (folder / f"{stem}_channels.tsv").write_text("name\ttype\tunits\tstatus\nA1\tSEEG\tuV\tgood\n")
    if audio:
        (folder / f"{stem}_audio.wav").write_bytes(b"RIFF")
    scans = root / f"sub-{sub}" / f"ses-{ses}" / f"sub-{sub}_ses-{ses}_scans.tsv"
    if not scans.exists():
        scans.write_text("filename\tacq_time\n")
    if acq_time is not None:
        with open(scans, "a") as f:
            f.write(f"ieeg/{stem}_ieeg.edf\t{acq_time}\n")
    return folder / f"{stem}_ieeg.edf"


def test_discovery_reads_acq_time_on_the_site_clock_and_the_sidecars(tmp_path):
    _run(tmp_path, run="01", acq_time="2026-03-02T09:00:00")  # naive: the site's clock
    _run(tmp_path, run="02", acq_time="2026-03-02T09:30:00Z")  # Z: UTC
    _run(tmp_path, sub="02", acq_time="2026-03-03T10:00:00+01:00")
    blocks = discover_blocks(tmp_path, FILE, timezone="Europe/Paris")
    assert [(b.subject, b.ieeg.name.split("_run-")[1][:2]) for b in blocks] == [
        ("01", "01"),
        ("01", "02"),
        ("02", "01"),
    ]
    utc = dt.timezone.utc
    assert blocks[0].start_time == dt.datetime(2026, 3, 2, 8, 0, tzinfo=utc)  # 09:00 in Paris (CET) is 08:00 UTC
    assert blocks[1].start_time == dt.datetime(2026, 3, 2, 9, 30, tzinfo=utc)
    assert blocks[2].start_time == dt.datetime(2026, 3, 3, 9, 0, tzinfo=utc)
    b = blocks[0]
    assert b.session == "01" and b.audio_onset == 0.0 and b.audio.name.endswith("_run-01_audio.wav")
    assert b.channels.name == "sub-01_ses-01_task-rest_run-01_channels.tsv" and b.events is None
    # the entity filters, as mne-bids' find_matching_paths
    assert [b.subject for b in discover_blocks(tmp_path, FILE, subjects=["02"])] == ["02"]
    assert len(discover_blocks(tmp_path, FILE, runs=["02"])) == 1


def test_the_written_table_reads_back_to_the_same_blocks(tmp_path):
    _run(tmp_path, run="01")
    _run(tmp_path, run="02", acq_time=None)
    with pytest.raises(
        InputError, match=r"scans.tsv: no acq_time for sub-01_ses-01_task-rest_run-02_ieeg.edf.*start_from=header"
    ):
        discover_blocks(tmp_path, FILE)
    blocks = discover_blocks(tmp_path, FILE, start_from="header")
    assert all(b.start_time is None for b in blocks)  # the data file header's meas_date, when packed
    table = write_recordings(blocks, tmp_path / "out" / "recordings.tsv")
    assert "\theader\t" in table.read_text()
    assert read_recordings(table) == [type(b)(**{**b.__dict__, "row": i}) for i, b in enumerate(blocks, start=1)]


def test_bad_bids_input_is_one_line_naming_the_file_or_key(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"bids_root=.*empty: no iEEG recording"):
        discover_blocks(tmp_path / "empty", FILE)
    with pytest.raises(InputError, match="not a folder"):
        discover_blocks(tmp_path / "nowhere", FILE)
    root = tmp_path / "r"
    _run(root, audio=False)
    with pytest.raises(
        InputError, match=r"audio.pattern='\*_audio.wav' matches no file of run sub-01_ses-01_task-rest_run-01"
    ):
        discover_blocks(root, FILE)
    assert main(["recordings", f"bids_root={root}", f"out={tmp_path / 't.tsv'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "audio.pattern" in err and not (tmp_path / "t.tsv").exists()
    with pytest.raises(ConfigError, match="audio.source"):
        discover_blocks(root, AudioSource(source="microphone"))
    nwb = tmp_path / "nwb"
    data = _run(nwb)
    data.rename(data.with_suffix(".nwb"))
    with pytest.raises(InputError, match=r"_ieeg.nwb: format .nwb cannot be read by MNE here"):
        discover_blocks(nwb, FILE)
    assert main(["pack", f"out={tmp_path / 'p'}"]) == 2
    assert "recordings=TABLE.tsv or bids_root=DIR" in capsys.readouterr().err


def test_a_stimulus_from_events_tsv_and_placeholder_data_reported_per_file(tmp_path, caplog, capsys):
    """bids-examples' ieeg_filtered_speech (real sidecars, placeholder data): the stim_file of events.tsv at its
    first onset; packing reports the placeholder by name, no traceback."""
    root = tmp_path / "fs"
    shutil.copytree(HERE / "ieeg_filtered_speech", root)
    stim = AudioSource(source="stimulus")
    with pytest.raises(InputError, match="no scans.tsv|no acq_time"):
        discover_blocks(root, stim)
    (b,) = discover_blocks(root, stim, start_from="header")
    assert b.subject == "cm4" and b.session == "n/a" and b.audio.name == "cm4_audio.wav"
    assert b.audio_onset == pytest.approx(49.033)  # the first trial naming it
    assert b.events is not None and b.electrodes.name == "sub-cm4_electrodes.tsv"
    with pytest.raises(InputError, match=r"audio.onset=5000: outside the recording .* of 1204.04 s"):
        discover_blocks(root, AudioSource(source="stimulus", onset=5000.0), start_from="header")
    ev = root / "sub-cm4" / "ieeg" / "sub-cm4_task-FilteredSpeech_events.tsv"
    lines = ev.read_text().splitlines()
    ev.write_text("\n".join(lines[:-1] + [lines[-1].rsplit("\t", 1)[0] + "\tother.wav"]) + "\n")
    with pytest.raises(InputError, match=r"events.tsv: stim_file names 2 files"):
        discover_blocks(root, stim, start_from="header")
    given = AudioSource(source="stimulus", stimulus="stimuli/cm4_audio.wav", onset=2.0)
    assert discover_blocks(root, given, start_from="header")[0].audio_onset == 2.0
    caplog.set_level(logging.WARNING)
    over = [f"bids_root={root}", "audio.source=stimulus", "audio.stimulus=stimuli/cm4_audio.wav", "start_from=header"]
    assert main(["pack", *over, f"out={tmp_path / 'out'}"]) == 2
    assert "no usable block (1 skipped" in capsys.readouterr().err
    assert "sub-cm4_task-FilteredSpeech_ieeg.eeg: an empty placeholder" in caplog.text


def _podcast(tmp_path: Path) -> Path:
    """The Podcast ECoG layout (ds005574's real sidecars and transcript) with placeholder EDF and WAV files."""
    root = tmp_path / "ds005574"
    shutil.copytree(HERE / "ds005574", root)
    for s in range(1, 10):
        (root / f"sub-{s:02d}" / "ieeg" / f"sub-{s:02d}_task-podcast_ieeg.edf").write_bytes(b"0" * 256)
    (root / "stimuli" / "podcast.wav").write_bytes(b"RIFF")
    return root


def test_the_podcast_layout_is_discovered_for_its_nine_patients(tmp_path):
    root = _podcast(tmp_path)
    audio = AudioSource("stimulus", stimulus="stimuli/podcast.wav", transcript="stimuli/whisper-medium/transcript.tsv")
    blocks = discover_blocks(root, audio, start_from="header")
    assert [b.subject for b in blocks] == [f"{s:02d}" for s in range(1, 10)]
    assert {b.audio.name for b in blocks} == {"podcast.wav"} and {b.audio_onset for b in blocks} == {0.0}
    assert all(b.words.name == "transcript.tsv" for b in blocks)
    assert all("MNI152NLin2009aSym" in b.electrodes.name for b in blocks)  # the template space by default
    native = discover_blocks(root, audio, start_from="header", space="Other")
    assert all("space-Other" in b.electrodes.name for b in native)
    with pytest.raises(
        InputError, match=r"space=fsaverage: sub-01 has electrodes in \['MNI152NLin2009aSym', 'Other'\]"
    ):
        discover_blocks(root, audio, start_from="header", space="fsaverage")
    table = write_recordings(blocks, root / "recordings.tsv")
    assert len(read_recordings(table)) == 9


@pytest.mark.slow
def test_a_bids_root_packs_to_the_same_shards_as_its_recordings_table(patient, tmp_path):
    """The simulator writes a BIDS root too (scans.tsv, dataset_description.json); packed from it, the ambient and
    the task sessions give the bytes of the recordings-table packs (events.tsv, words, electrodes included)."""
    root, sim = patient["root"], patient["root"] / "sim"
    out = tmp_path / "amb"
    assert main(["pack", f"bids_root={sim}", "sessions=[day1]", f"out={out}"]) == 0
    assert main(["recordings", f"bids_root={sim}", "sessions=[task]", f"out={tmp_path / 'task.tsv'}"]) == 0
    task = ["channels_from=" + str(root / "amb"), "split.val=0.25", "split.test=0.25"]
    assert main(["pack", f"recordings={tmp_path / 'task.tsv'}", *task, f"out={tmp_path / 'task'}"]) == 0
    for mine, theirs in ((out, root / "amb"), (tmp_path / "task", root / "task")):
        tars = sorted(p.name for p in theirs.glob("*.tar"))
        assert tars and tars == sorted(p.name for p in mine.glob("*.tar"))
        for name in tars:
            assert (mine / name).read_bytes() == (theirs / name).read_bytes(), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["subjects"]["sim01"]["coordinates"]["space"] == "Other"


@pytest.mark.slow
def test_the_podcast_recipe_packs_a_patient_in_stretches_of_the_story(tmp_path):
    """One Podcast patient (sub-08's real sidecars: 82 ECoG, 2 ECG, 7 MISC channels, bad ones marked) with a
    synthetic 120-s EDF at 512 Hz and stimulus WAV: non-neural channels dropped by type, bad ones by status, MNI
    positions in the manifest, the transcript's words in the windows, the one run split into 4 stretches with
    guard gaps."""
    import mne
    import numpy as np
    import soundfile as sf

    from ieegfm.io.recordings import read_channels_tsv

    root = _podcast(tmp_path)
    for s in range(1, 10):
        if s != 8:
            shutil.rmtree(root / f"sub-{s:02d}")
    ch = read_channels_tsv(root / "sub-08" / "ieeg" / "sub-08_task-podcast_channels.tsv")
    names = list(ch)
    rng = np.random.default_rng(0)
    sfreq, seconds = 512.0, 120.0
    types = {"ECOG": "ecog", "ECG": "ecg", "MISC": "misc"}
    info = mne.create_info(names, sfreq, [types[ch[n]["type"]] for n in names])
    raw = mne.io.RawArray(30e-6 * rng.standard_normal((len(names), int(sfreq * seconds))), info, verbose="error")
    raw.set_meas_date(dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc))
    edf = root / "sub-08" / "ieeg" / "sub-08_task-podcast_ieeg.edf"
    mne.export.export_raw(edf, raw, fmt="edf", overwrite=True, verbose="error")
    sf.write(root / "stimuli" / "podcast.wav", 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
    out = tmp_path / "podcast"
    args = [f"bids_root={root}", "start_from=header", "audio.source=stimulus", "audio.stimulus=stimuli/podcast.wav",
            "audio.transcript=stimuli/whisper-medium/transcript.tsv", "split.stretches=4", "split.val=0.25",
            "split.test=0.25", f"out={out}"]  # fmt: skip
    assert main(["pack", *args]) == 0
    m = json.loads((out / "manifest.json").read_text())
    sub = m["subjects"]["08"]
    bad = {n for n, r in ch.items() if r["status"] == "bad"}
    picked = {n for name in sub["ch_names"] for n in name.split("-")}
    assert not picked & bad and all(ch[n]["type"] == "ECOG" for n in picked)
    assert sub["coordinates"]["space"] == "MNI152NLin2009aSym"
    parts = {k: v for k, v in m["blocks"].items()}
    assert sorted(v["split"] for v in parts.values()) == ["test", "train", "train", "val"]
    assert [v["stretch_s"][0] for v in parts.values()] == [0.0, 30.0, 60.0, 90.0]
    assert any(v["guard_trim_s"] != [0.0, 0.0] for v in parts.values())  # guard gaps where splits touch
    import webdataset as wds

    words = [w for tar in sorted(out.glob("*.tar")) for s in wds.WebDataset(str(tar), shardshuffle=False).decode()
             for w in s["json"].get("words", [])]  # fmt: skip
    first = min(words)
    assert first[2] == "Act" and first[0] == pytest.approx(3.71)  # the transcript's first word, 3.71 s in
