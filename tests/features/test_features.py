import numpy as np
import pytest
import soundfile as sf
from recording_fixtures import save_tiny_wav2vec2

from ieegfm.errors import ConfigError
from ieegfm.features import LogMel, Wav2Vec2Features, targets_at
from ieegfm.io.audio import read_segment


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("w2v"))


def test_logmel_tone_lands_in_the_right_band():
    sfreq = 16000
    t = np.arange(sfreq) / sfreq
    m = LogMel(n_mels=40)
    low, _ = m.compute(np.sin(2 * np.pi * 300 * t).astype(np.float32))
    high, times = m.compute(np.sin(2 * np.pi * 4000 * t).astype(np.float32))
    assert low.shape == (40, 101) and times[1] == pytest.approx(0.01)
    assert low.mean(1).argmax() < high.mean(1).argmax()


def test_targets_follow_an_onset_at_the_right_time(tmp_path):
    sfreq = 16000
    audio = np.zeros(10 * sfreq, np.float32)
    audio[int(6.0 * sfreq) :] = 0.5 * np.random.default_rng(0).standard_normal(4 * sfreq)
    path = tmp_path / "a.wav"
    sf.write(path, audio, 22050 if False else sfreq)
    times = np.arange(400) / 40.0
    out = np.zeros((40, 400), np.float32)
    targets_at(LogMel(), path, times, out, chunk_s=4.0)  # chunk boundaries at 4 and 8 s
    energy = out.mean(0)
    onset = times[np.argmax(energy > (energy.min() + energy.max()) / 2)]
    assert abs(onset - 6.0) <= 0.05


def test_read_segment_resamples_and_pads(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.ones(22050 * 2, np.float32) * 0.25, 22050)
    seg = read_segment(path, 1.5, 2.5, 16000)  # half inside, half after the end
    assert seg.shape == (16000,)
    assert np.allclose(seg[1000:7000], 0.25, atol=1e-3) and np.allclose(seg[9000:], 0, atol=1e-3)


def test_wav2vec2_layer_features_from_local_folder(tiny_wav2vec2):
    w = Wav2Vec2Features(tiny_wav2vec2, layer=2, chunk_s=2.0)
    feats, times = w.compute(np.random.default_rng(0).standard_normal(32000).astype(np.float32))
    assert feats.shape == (16, 99) and w.n_features == 16
    assert times[0] == pytest.approx(0.0125) and np.allclose(np.diff(times), 0.02)
    import torch
    from transformers import Wav2Vec2Model

    ref = Wav2Vec2Model.from_pretrained(tiny_wav2vec2).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(32000).astype(np.float32))[None]
    x = (x - x.mean()) / torch.sqrt(x.var() + 1e-7)
    with torch.no_grad():
        expected = ref(x, output_hidden_states=True).hidden_states[2][0].T.numpy()
    assert np.allclose(feats, expected, atol=1e-5)


def test_wav2vec2_config_errors(tiny_wav2vec2, tmp_path):
    with pytest.raises(ConfigError, match="audio.layer=19: expected 0..2"):
        Wav2Vec2Features(tiny_wav2vec2, layer=19)
    with pytest.raises(ConfigError, match="audio.model"):
        Wav2Vec2Features(None)
    with pytest.raises(ConfigError, match="config.json"):
        Wav2Vec2Features(tmp_path)


def test_wav2vec2_batched_chunks_equal_single_chunks(tiny_wav2vec2, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "a.wav"
    sf.write(path, 0.1 * rng.standard_normal(16000 * 7).astype(np.float32), 16000)
    w = Wav2Vec2Features(tiny_wav2vec2, layer=1, chunk_s=2.0)
    times = np.arange(7 * 40) / 40.0  # the last chunk (6-7 s) is shorter than the others
    single = targets_at(w, path, times, np.zeros((16, len(times)), np.float32), chunk_s=2.0, batch_chunks=1)
    batched = targets_at(w, path, times, np.zeros((16, len(times)), np.float32), chunk_s=2.0, batch_chunks=3)
    assert np.allclose(single, batched, atol=1e-4)
    assert np.abs(single).sum(0).min() > 0  # every time filled
