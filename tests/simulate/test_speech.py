"""eSpeak NG through ctypes: audio with word timings."""

from __future__ import annotations

import numpy as np
import pytest

from ieegfm.simulate.scene import DEFAULT_VOICES, render_block
from ieegfm.simulate.speech import ESPEAK_SFREQ, Speaker, Voice, synthesize

TEXT = "The nurse will come by at nine to check your blood pressure."


def _frame_rms(audio, sfreq, t0, t1):
    seg = audio[int(t0 * sfreq) : int(t1 * sfreq)]
    return float(np.sqrt(np.mean(seg.astype(float) ** 2))) if seg.size else 0.0


@pytest.mark.parametrize("sfreq", [None, 16000])
def test_words_inside_audio_and_voiced(sfreq):
    utt = synthesize(TEXT, Voice("en-us", 175, 50), sfreq=sfreq)
    assert utt.sfreq == (ESPEAK_SFREQ if sfreq is None else sfreq)
    assert utt.audio.dtype == np.float32 and 1.5 < utt.duration < 8
    assert [w for _, _, w in utt.words] == TEXT.rstrip(".").split()
    onsets = np.array([w[0] for w in utt.words])
    assert np.all(np.diff(onsets) > 0)
    for onset, duration, _ in utt.words:
        assert 0 <= onset and duration > 0.03 and onset + duration <= utt.duration + 1e-6
    # energy inside words is far above the energy of the trailing silence after the last word
    in_words = np.mean([_frame_rms(utt.audio, utt.sfreq, o, o + d) for o, d, _ in utt.words])
    end = utt.words[-1][0] + utt.words[-1][1]
    assert in_words > 0.02
    if utt.duration - end > 0.02:
        assert _frame_rms(utt.audio, utt.sfreq, end + 0.01, utt.duration) < 0.2 * in_words


def test_voices_differ_and_unknown_voice_raises():
    a = synthesize("Good morning.", DEFAULT_VOICES[0])
    b = synthesize("Good morning.", DEFAULT_VOICES[1])
    assert a.audio.shape != b.audio.shape or not np.array_equal(a.audio, b.audio)
    with pytest.raises(ValueError, match="not-a-voice"):
        synthesize("Hello.", Voice("not-a-voice"))


def test_speaker_caches_and_isolated_speakers_agree():
    """eSpeak is stateful; isolated speakers (fresh worker each) give identical samples for the same requests."""
    synthesize("Something else first.", DEFAULT_VOICES[2])  # disturb the in-process engine
    runs = []
    for _ in range(2):
        with Speaker(DEFAULT_VOICES[:2], 16000, isolated=True) as sp:
            u1 = sp.say(TEXT, 1)
            assert sp.say(TEXT, 1) is u1 and sp.n_cached == 1
            runs.append([u1.audio, sp.say("Good morning.", 0).audio])
    for x, y in zip(*runs):
        np.testing.assert_array_equal(x, y)


def test_scene_speech_fraction_tracks_target():
    sp = Speaker(DEFAULT_VOICES, 16000)
    sentences = ["She baked a chocolate cake for her son's birthday.", "The bus stops right in front of the door."]
    day = render_block(240.0, 16000, np.random.default_rng(0), sp, sentences, 0.55)
    night = render_block(240.0, 16000, np.random.default_rng(0), sp, sentences, 0.12)
    assert day.audio.shape == (240 * 16000,) and np.abs(day.audio).max() <= 1.0
    assert 0.4 < day.speech_fraction < 0.7 and night.speech_fraction < 0.3
    assert day.speech_fraction > night.speech_fraction
    assert {s.kind for s in day.segments} >= {"speech"}
    for onset, duration, _ in day.words:
        assert 0 <= onset and onset + duration <= 240.0
    # words sit on loud audio
    rms_words = np.mean([_frame_rms(day.audio, 16000, o, o + d) for o, d, _ in day.words[:50]])
    assert rms_words > 5 * 0.003
