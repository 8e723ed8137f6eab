"""wav2vec 2.0 hidden-state targets from a local HuggingFace checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ieegfm.errors import ConfigError


class Wav2Vec2Features:
    """Hidden states of a frozen :class:`transformers.Wav2Vec2Model` loaded from a local folder.

    Parameters
    ----------
    model : str | Path
        Folder written by ``save_pretrained`` (``config.json`` + weights). Nothing is downloaded.
    layer : int
        Index into ``hidden_states``: 0 is the input to the first transformer layer (the projected CNN
        features), ``i`` the output of transformer layer ``i``. The default 19 follows arXiv 2512.15830
        (wav2vec2-large-xlsr-53, 24 layers).
    sfreq : int
        Audio rate the model expects (Hz).
    chunk_s : float
        Context of one forward pass (s): the audio is encoded in independent ``chunk_s`` segments.
    device : str
        Torch device; on CUDA the forward pass runs under bf16 autocast.

    Raises
    ------
    ConfigError
        ``audio.model`` is missing or not a wav2vec 2.0 checkpoint folder; ``audio.layer`` out of range.

    Notes
    -----
    Frame ``j`` of the CNN encoder covers samples ``[j * stride, j * stride + rf)`` and is placed at its
    centre, ``(j * stride + rf / 2) / sfreq`` seconds (stride 320, rf 400 samples: 50 Hz, 12.5 ms offset).
    Input is normalised to zero mean and unit variance per segment when the checkpoint's feature-extractor
    config asks for it (``do_normalize``, true for xlsr-53), as :class:`Wav2Vec2FeatureExtractor` does.
    """

    name = "wav2vec2"

    def __init__(
        self, model: str | Path | None, layer: int = 19, sfreq: int = 16000, chunk_s: float = 30.0, device: str = "cpu"
    ) -> None:
        from transformers import Wav2Vec2Model

        if not model:
            raise ConfigError(
                "audio.model: audio.features=wav2vec2 needs audio.model=DIR, a local folder "
                "written by Wav2Vec2Model.save_pretrained"
            )
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"audio.model={folder}: expected a folder with config.json and weights (Wav2Vec2Model.save_pretrained)"
            )
        try:
            self.model = Wav2Vec2Model.from_pretrained(folder, local_files_only=True).eval().to(device)
        except Exception as err:
            raise ConfigError(
                f"audio.model={folder}: cannot load a Wav2Vec2Model ({str(err).splitlines()[0]})"
            ) from None
        n_layers = self.model.config.num_hidden_layers
        if not 0 <= layer <= n_layers:
            raise ConfigError(
                f"audio.layer={layer}: expected 0..{n_layers} for {folder} "
                f"({n_layers} transformer layers; hidden_states has {n_layers + 1} entries)"
            )
        self.model.requires_grad_(False)
        self.folder, self.layer, self.sfreq, self.chunk_s, self.device = folder, int(layer), int(sfreq), chunk_s, device
        self.n_features = int(self.model.config.hidden_size)
        self.context_s = float(chunk_s)
        cfg = self.model.config
        self.stride = int(np.prod(cfg.conv_stride))
        rf = 1
        for k, s in zip(reversed(cfg.conv_kernel), reversed(cfg.conv_stride)):
            rf = (rf - 1) * s + k
        self.receptive_field = rf
        pre = folder / "preprocessor_config.json"
        self.do_normalize = json.loads(pre.read_text()).get("do_normalize", True) if pre.is_file() else True

    @torch.inference_mode()
    def compute(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layer features ``(hidden_size, n_frames)`` and frame centres (s) of a mono segment ``(n_samples,)``."""
        return self.compute_batch([audio])[0]

    @torch.inference_mode()
    def compute_batch(self, audios: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`compute` for several segments, in one forward pass per group of equal-length segments.

        Segments are never padded (wav2vec 2.0 without an attention mask would see the padding), so a batch
        holds segments of one length: all full ``chunk_s`` chunks of a file share a length.
        """
        results: list = [None] * len(audios)
        by_len: dict[int, list[int]] = {}
        for i, a in enumerate(audios):
            by_len.setdefault(len(a), []).append(i)
        for idx in by_len.values():
            x = torch.from_numpy(np.stack([np.asarray(audios[i], dtype=np.float32) for i in idx]))
            if self.do_normalize:
                x = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True) + 1e-7)
            x = x.to(self.device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
                hidden = self.model(x, output_hidden_states=True).hidden_states[self.layer]
            feats = hidden.float().transpose(1, 2).cpu().numpy()
            times = (np.arange(feats.shape[2]) * self.stride + self.receptive_field / 2) / self.sfreq
            for k, i in enumerate(idx):
                results[i] = (feats[k], times)
        return results

    def config(self) -> dict:
        """JSON-able description for the manifest."""
        return {
            "features": "wav2vec2",
            "model": str(self.folder),
            "layer": self.layer,
            "sfreq": self.sfreq,
            "chunk_s": self.chunk_s,
            "hidden_size": self.n_features,
            "hidden_states_convention": "index 0 = input to the first transformer layer",
            "model_type": self.model.config.model_type,
            "num_hidden_layers": self.model.config.num_hidden_layers,
        }
