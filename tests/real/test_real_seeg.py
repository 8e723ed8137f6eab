"""Real input: the clinical sEEG export of ../shared/data with real read speech as its ambient audio."""

import datetime as dt
import json

import mne
import numpy as np
import pytest
import soundfile as sf
import webdataset as wds
from recording_fixtures import SHARED
from scipy.signal import welch

from ieegfm.config import load_config
from ieegfm.shards.pack import pack

EDF = SHARED / "ieeg" / "sample_seeg.edf"
pytestmark = pytest.mark.skipif(not EDF.is_file(), reason=f"real data not found at {EDF} (CI always has ../shared)")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    raw = mne.io.read_raw_edf(EDF, preload=False, verbose="error")
    need = raw.n_times / raw.info["sfreq"] + 1.0
    pieces, total = [], 0.0
    for wav in sorted((SHARED / "speech" / "ljspeech").glob("*.wav")):
        x, sfreq = sf.read(wav, dtype="float32")
        pieces += [x, np.zeros(int(0.5 * sfreq), np.float32)]  # real speech with pauses, as a room would hear
        total += len(x) / sfreq + 0.5
        if total >= need:
            break
    sf.write(tmp / "ambient.wav", np.concatenate(pieces), sfreq)
    start = raw.info["meas_date"].astimezone(dt.timezone.utc)
    (tmp / "recordings.tsv").write_text(
        f"subject\tsession\tieeg\taudio\tstart_time\nreal\t1\t{EDF}\tambient.wav\t{start.isoformat()}\n"
    )
    return tmp / "recordings.tsv"


def _decode(out):
    return list(wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False).decode())


def test_real_edf_packs_to_documented_shards(table, tmp_path):
    out = tmp_path / "s"
    manifest = json.loads(
        pack(
            load_config("pack", overrides=[f"recordings={table}", f"out={out}", "split.val=0", "split.test=0"])
        ).read_text()
    )
    samples = _decode(out)
    assert len(samples) == 1
    s = samples[0]
    names = s["json"]["ch_names"]
    assert s["brain.npy"].dtype == np.float16 and s["brain.npy"].shape == (len(names), 800)  # 20 s at 40 Hz
    assert s["audio.npy"].shape == (40, 800)
    assert not any("EKG" in n or "DC" in n for n in names)
    dropped = manifest["subjects"]["real"]["dropped"]
    assert {"EKG1", "EKG2", *(f"DC0{i}" for i in range(1, 9))} <= set(dropped)
    assert all("'" in n and "-" in n for n in names) and len(names) >= 80  # bipolar pairs along primed shafts


def test_real_line_noise_attenuated_by_20_db(table, tmp_path):
    """At an output rate that can represent 60 Hz, the notch removes >= 20 dB of line noise."""
    out = tmp_path / "s"
    pack(
        load_config(
            "pack",
            overrides=[
                f"recordings={table}",
                f"out={out}",
                "split.val=0",
                "split.test=0",
                "preprocess.sfreq=250",
                "preprocess.h_freq=100",
                "preprocess.montage=none",
            ],
        )
    )
    s = _decode(out)[0]
    names = s["json"]["ch_names"]
    raw = mne.io.read_raw_edf(EDF, preload=True, verbose="error").pick(names)
    edge = 2.0  # skip filter edges

    def line_ratio(x, sfreq):
        x = x[:, int(edge * sfreq) : x.shape[1] - int(edge * sfreq)]
        f, p = welch(x, fs=sfreq, nperseg=int(4 * sfreq), axis=-1)
        line = p[:, (f > 59.5) & (f < 60.5)].sum(1)
        ref = p[:, (f > 20) & (f < 40)].sum(1)
        return line / ref

    before = line_ratio(raw.get_data(), raw.info["sfreq"])
    after = line_ratio(s["brain.npy"].astype(np.float64), 250.0)
    attenuation_db = 10 * np.log10(before / after)
    assert 10 * np.log10(np.median(before)) > -10  # the file really has strong line noise
    assert np.median(attenuation_db) >= 20, np.percentile(attenuation_db, [5, 50, 95])
