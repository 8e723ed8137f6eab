"""Frozen audio targets (log-mel, wav2vec 2.0 hidden states) and their alignment to brain samples."""

from ieegfm.features.base import AudioFeatureExtractor, interpolation_weights, targets_at
from ieegfm.features.logmel import LogMel
from ieegfm.features.wav2vec2 import Wav2Vec2Features

__all__ = [
    "AudioFeatureExtractor",
    "LogMel",
    "Wav2Vec2Features",
    "FEATURES",
    "build_extractor",
    "interpolation_weights",
    "targets_at",
]

#: Audio features registered for ``audio.features`` (the frozen targets packed beside the brain).
FEATURES: dict[str, type[AudioFeatureExtractor]] = {"logmel": LogMel, "wav2vec2": Wav2Vec2Features}


def build_extractor(audio_cfg) -> AudioFeatureExtractor:
    """Build the extractor named by ``audio.features`` from an :class:`ieegfm.config.AudioConfig`."""
    if audio_cfg.features == "logmel":
        return LogMel(n_mels=audio_cfg.n_mels, sfreq=audio_cfg.sfreq, chunk_s=audio_cfg.chunk_s)
    if audio_cfg.features == "wav2vec2":
        return Wav2Vec2Features(
            audio_cfg.model,
            layer=audio_cfg.layer,
            sfreq=audio_cfg.sfreq,
            chunk_s=audio_cfg.chunk_s,
            device=audio_cfg.device,
        )
    raise ValueError(f"audio.features={audio_cfg.features!r}: expected one of {list(FEATURES)}")
