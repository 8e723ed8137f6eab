"""The checkpoint contract: what a pretraining or finetuning checkpoint records, and how it is loaded safely.

Every checkpoint ieegfm writes carries, under ``CONTRACT_KEY``, a :class:`CheckpointContract`: the encoder
config (:func:`ieegfm.models.build_encoder` arguments), the head (finetuning), the **subject -> index map and
each subject's channel names** (after the montage, in the order of the per-subject projection), the provenance of
the shards it was trained on (manifest sha256, pack config, hours per split, day and daytime), the pretraining
checkpoint a finetuned model started from, and the ieegfm version. Everything in it is plain data (dicts, lists,
strings, numbers), so checkpoints load with ``torch.load(weights_only=True)``: a file that would need arbitrary
unpickling is refused, never executed.

Loading a checkpoint onto shards (:func:`encoder_for_shards`) matches subjects and channels by name: the same
names in another order are reordered (the rows of the per-subject projection follow the shards' order), missing or
extra channels are an error naming them, unless ``channels='intersect'``, which zero-fills (drops the projection
rows of channels the shards lack, gives channels the checkpoint never saw a zero row) and says so.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import ieegfm
from ieegfm.errors import InputError
from ieegfm.io.checksum import sha256_file
from ieegfm.io.jsonfile import read_json
from ieegfm.io.manifest import Manifest
from ieegfm.models import BrainEncoder, build_encoder

logger = logging.getLogger(__name__)

#: Key of the contract in a checkpoint dict (beside Lightning's ``state_dict``).
CONTRACT_KEY = "ieegfm_contract"
#: Version of the contract layout; bumped when a field changes meaning.
CONTRACT_VERSION = 1
CHANNEL_POLICIES = ("exact", "intersect")
#: The files of a model folder (``ieegfm export``): weights and config, the layout model hubs use.
MODEL_WEIGHTS, MODEL_CONFIG = "model.safetensors", "config.json"


@dataclass
class CheckpointContract:
    """What an ieegfm checkpoint was trained as and on (plain data; see the module docstring).

    Attributes
    ----------
    kind : {'pretrain', 'finetune'}
    encoder : dict
        :func:`ieegfm.models.build_encoder` arguments (``name``, ``n_chans``, ``n_subjects``, ``n_times``,
        ``sfreq`` in Hz, ``n_features``, ``pooling`` and the encoder's own sizes).
    subjects : dict
        Subject label -> ``{"index": int, "ch_names": [str, ...]}``: row ``index`` of the per-subject projection,
        whose channel ``j`` is ``ch_names[j]``; ``coordinates`` (positions per channel, space, units) when the
        pack had an ``electrodes.tsv`` (:func:`ieegfm.io.electrodes.channel_coordinates`).
    data : dict
        Provenance of the training shards: ``shards`` (path), ``manifest_sha256``, ``pack_config``, ``audio``
        (target config), ``hours`` (per split: ``hours``, ``daytime_hours``, ``by_day``), ``subject_hours``
        (subject -> split -> hours, where known: :meth:`ieegfm.io.manifest.Manifest.subject_hours`).
    head : dict or None
        Finetuning: ``{"name": str, **constructor arguments}`` of the head (:func:`ieegfm.heads.build_head`).
    pretrained : dict or None
        Finetuning: the checkpoint it started from (``path``, ``sha256``, its ``data``), or None (from scratch).
    training : dict
        Free-form settings worth keeping (objective, freeze, seed, ...).
    ieegfm_version : str
    version : int
        :data:`CONTRACT_VERSION` of the layout.
    """

    kind: str
    encoder: dict
    subjects: dict
    data: dict
    head: dict | None = None
    pretrained: dict | None = None
    training: dict = field(default_factory=dict)
    ieegfm_version: str = ieegfm.__version__
    version: int = CONTRACT_VERSION

    def to_dict(self) -> dict:
        """Plain dict (what goes into the checkpoint)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "checkpoint") -> CheckpointContract:
        """Read a contract back.

        Raises
        ------
        InputError
            A required field is missing or the layout version is newer than this ieegfm reads.
        """
        missing = [k for k in ("kind", "encoder", "subjects", "data") if k not in d]
        if missing:
            raise InputError(f"{where}: ieegfm contract lacks {missing}")
        if int(d.get("version", 1)) > CONTRACT_VERSION:
            raise InputError(
                f"{where}: contract version {d['version']} is newer than this ieegfm reads ({CONTRACT_VERSION}); "
                "upgrade ieegfm"
            )
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def channel_map(self) -> dict[str, list[str]]:
        """Subject label -> channel names, in projection order."""
        return {s: list(v["ch_names"]) for s, v in self.subjects.items()}


def shards_provenance(shards: str | Path, manifest: Manifest) -> dict:
    """The ``data`` field of a contract for a shard folder: manifest sha256, pack config, hours."""
    root = Path(shards)
    hours = {
        sp: {"hours": st.hours, "daytime_hours": st.daytime_hours, "by_day": dict(st.by_day), "n_windows": st.n_windows}
        for sp, st in manifest.splits.items()
    }
    return {
        "shards": str(root),
        "manifest_sha256": sha256_file(root / "manifest.json"),
        "pack_config": manifest.config or None,
        "audio": manifest.audio,
        "sfreq": manifest.sfreq,
        "hours": hours,
        "subject_hours": manifest.subject_hours(),
    }


def subjects_of(manifest: Manifest) -> dict:
    """``subjects`` field of a contract from a shard manifest: label -> index, channel names and, when the pack
    had an ``electrodes.tsv``, ``coordinates`` (positions per channel, space, units)."""
    return {
        s: {"index": v.index, "ch_names": list(v.ch_names), **({"coordinates": v.coordinates} if v.coordinates else {})}
        for s, v in manifest.subjects.items()
    }


def load_model_folder(path: str | Path) -> tuple[dict, CheckpointContract]:
    """Load a model folder written by ``ieegfm export``: ``model.safetensors`` and ``config.json``.

    Nothing in it is executed: the weights are a safetensors file (a header and raw tensors), the config plain
    JSON. The weights must match the sha256 that ``config.json`` records.

    Parameters
    ----------
    path : str | Path
        The folder.

    Returns
    -------
    state : dict
        ``{"state_dict": {name: tensor}, CONTRACT_KEY: contract dict}``, as :func:`load_checkpoint` returns.
    contract : CheckpointContract

    Raises
    ------
    InputError
        ``config.json`` or ``model.safetensors`` missing, not what ``ieegfm export`` writes, or the weights'
        sha256 differs from the recorded one (damaged or replaced).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    config, weights = path / MODEL_CONFIG, path / MODEL_WEIGHTS
    for f in (config, weights):
        if not f.is_file():
            raise InputError(f"ckpt={path}: not a model folder of ieegfm export (no {f.name})")
    cfg = read_json(config, str(config))
    if not isinstance(cfg, dict) or cfg.get("library_name") != "ieegfm" or not isinstance(cfg.get("contract"), dict):
        raise InputError(f"{config}: not written by ieegfm export (expected library_name 'ieegfm' and a contract)")
    expected = (cfg.get("weights") or {}).get("sha256")
    if expected != sha256_file(weights):
        raise InputError(f"{weights}: sha256 differs from {config.name}'s (damaged or replaced); export again")
    try:
        tensors = load_file(weights, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{weights}: not a safetensors file ({err})") from None
    contract = CheckpointContract.from_dict(cfg["contract"], where=f"ckpt={path}")
    return {"state_dict": tensors, CONTRACT_KEY: cfg["contract"]}, contract


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file, or of the weights of a model folder (:func:`load_model_folder`)."""
    path = Path(path)
    return sha256_file(path / MODEL_WEIGHTS if path.is_dir() else path)


def load_checkpoint(path: str | Path) -> tuple[dict, CheckpointContract]:
    """Load an ieegfm checkpoint without executing code (``torch.load(weights_only=True)``).

    Parameters
    ----------
    path : str | Path
        A ``.ckpt`` written by ``ieegfm pretrain`` or ``ieegfm finetune``, or a model folder written by
        ``ieegfm export`` (:func:`load_model_folder`).

    Returns
    -------
    state : dict
        The checkpoint (``state_dict`` and Lightning's training state).
    contract : CheckpointContract

    Raises
    ------
    InputError
        Missing file; a file that needs arbitrary unpickling (refused, not executed); not a torch checkpoint; a
        checkpoint without an ieegfm contract (not written by ieegfm, or by a version before the contract).
    """
    path = Path(path)
    if path.is_dir():
        return load_model_folder(path)
    if not path.is_file():
        raise InputError(f"ckpt={path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        unsafe = [ln for ln in lines if "GLOBAL" in ln]
        if unsafe:  # the pickle names a function or class to call: refused before anything runs
            raise InputError(
                f"ckpt={path}: refused: loading it would need arbitrary unpickling ({unsafe[0][:160]}); ieegfm "
                "checkpoints hold only tensors, dicts, lists, strings and numbers"
            ) from None
        reason = next((ln for ln in lines if ln.startswith("Unsupported")), lines[-1] if lines else "")
        raise InputError(f"ckpt={path}: not a torch checkpoint ({reason[:160]})") from None
    except Exception as err:
        raise InputError(f"ckpt={path}: not a torch checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise InputError(f"ckpt={path}: not an ieegfm checkpoint (no state_dict)")
    if CONTRACT_KEY not in state:
        legacy = isinstance(state.get("hyper_parameters"), dict) and "encoder_config" in state["hyper_parameters"]
        hint = (
            "written by an ieegfm before the checkpoint contract: it records no channel names, so it cannot be "
            "matched to shards safely; pretrain again"
            if legacy
            else "not written by ieegfm pretrain/finetune"
        )
        raise InputError(f"ckpt={path}: no {CONTRACT_KEY!r} ({hint})")
    return state, CheckpointContract.from_dict(state[CONTRACT_KEY], where=f"ckpt={path}")


def module_weights(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    """Entries of ``state['state_dict']`` under ``prefix.`` with the prefix removed (e.g. ``'encoder'``)."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in state["state_dict"].items() if k.startswith(p)}


def unseen_subjects(contract: CheckpointContract, manifest: Manifest) -> list[str]:
    """The shards' subjects the checkpoint was not trained on (new patients), in the shards' order."""
    return [s for s in manifest.subjects if s not in contract.channel_map()]


def match_channels(
    contract: CheckpointContract, manifest: Manifest, where: str, channels: str = "exact", new_subjects: bool = False
) -> dict[str, list[int | None]]:
    """For each subject of the shards, where each shard channel sits in the checkpoint's projection.

    Parameters
    ----------
    contract : CheckpointContract
    manifest : dict
        The shards' ``manifest.json``.
    where : str
        ``"ckpt=... shards=..."``, named in errors.
    channels : {'exact', 'intersect'}
        ``'exact'``: the shards must have the checkpoint's channels (any order). ``'intersect'``: use the common
        channels; shard channels unknown to the checkpoint get a zero projection row, checkpoint channels absent
        from the shards are zero-filled (their rows dropped), with a warning.
    new_subjects : bool
        Accept subjects the checkpoint was not trained on (a new patient): every row of theirs is None.

    Returns
    -------
    rows : dict
        Shard subject label -> for each shard channel (shard order) its row in the checkpoint's projection of
        that subject, or None (unknown channel, ``'intersect'`` only; every channel of a new subject).

    Raises
    ------
    InputError
        A shard subject the checkpoint was not trained on; missing or extra channels with ``channels='exact'``;
        no common channel.
    """
    if channels not in CHANNEL_POLICIES:
        raise InputError(f"channels={channels!r}: expected one of {list(CHANNEL_POLICIES)}")
    ckpt_channels = contract.channel_map()
    rows: dict[str, list[int | None]] = {}
    for subject, info in manifest.subjects.items():
        if subject not in ckpt_channels and new_subjects:
            rows[subject] = [None] * len(info.ch_names)
            continue
        if subject not in ckpt_channels:
            raise InputError(
                f"{where}: subject {subject!r} of the shards is not in the checkpoint (trained on "
                f"{sorted(ckpt_channels)}); finetune on that subject's task data instead"
            )
        theirs, ours = ckpt_channels[subject], list(info.ch_names)
        missing = [c for c in theirs if c not in ours]
        extra = [c for c in ours if c not in theirs]
        if (missing or extra) and channels == "exact":
            parts = []
            if missing:
                parts.append(f"missing from the shards: {', '.join(missing)}")
            if extra:
                parts.append(f"not in the checkpoint: {', '.join(extra)}")
            raise InputError(
                f"{where}: subject {subject!r} channels differ ({'; '.join(parts)}); pack with "
                "channels_from=<pretraining shards>, or pass channels=intersect to zero-fill"
            )
        if missing or extra:
            if len(missing) == len(theirs):
                raise InputError(f"{where}: subject {subject!r}: no channel in common with the checkpoint")
            logger.warning(
                "channels=intersect, subject %s: %d checkpoint channel(s) absent from the shards zero-filled (%s); "
                "%d shard channel(s) unknown to the checkpoint ignored (%s)",
                subject,
                len(missing),
                ", ".join(missing) or "-",
                len(extra),
                ", ".join(extra) or "-",
            )
        rows[subject] = [theirs.index(c) if c in theirs else None for c in ours]
    return rows


def encoder_config_for(contract: CheckpointContract, manifest: Manifest) -> dict:
    """The checkpoint's encoder config laid out for a shard set (its ``n_chans_max`` and subject count)."""
    return {**contract.encoder, "n_chans": manifest.n_chans_max, "n_subjects": len(manifest.subjects)}


def spatial_encoder_for_shards(
    contract: CheckpointContract, weights: dict[str, torch.Tensor] | None, manifest: Manifest, where: str
) -> BrainEncoder:
    """A spatial-input encoder (``model.input=spatial``) for a shard set: the checkpoint's weights as they are,
    the positions of the shards' channels (:func:`ieegfm.io.electrodes.manifest_positions`): subjects and channels
    need not be the checkpoint's (a new patient is read zero-shot).

    Raises
    ------
    InputError
        A subject of the shards without electrode positions.
    """
    from ieegfm.io.electrodes import manifest_positions

    encoder = build_encoder(**encoder_config_for(contract, manifest))
    if weights is not None:
        encoder.load_state_dict(weights)
    encoder.set_positions(torch.from_numpy(manifest_positions(manifest, where)))
    new = unseen_subjects(contract, manifest)
    if new:
        logger.info("%s: subject(s) %s new to the checkpoint, read from their electrode positions", where, new)
    return encoder


def encoder_for_shards(
    contract: CheckpointContract,
    weights: dict[str, torch.Tensor] | None,
    manifest: Manifest,
    where: str,
    channels: str = "exact",
    window_n: int | None = None,
    new_subjects: bool = False,
) -> BrainEncoder:
    """Rebuild a checkpoint's encoder for a shard set: subject indices and channel order of the shards.

    The per-subject projection (``subject_layers.weight``, shape (n_subjects, n_chans, projected_chans)) is
    re-laid so that shard subject index ``i`` and shard channel ``j`` read the checkpoint's row of the same
    subject and channel name. Everything after the projection is unchanged, so embeddings do not depend on the
    shards' channel order (tested).

    Parameters
    ----------
    contract : CheckpointContract
    weights : dict or None
        Encoder ``state_dict`` (:func:`module_weights`); None returns a freshly initialised encoder of the same
        config laid out for the shards (training from scratch).
    manifest : dict
        The shards' ``manifest.json``.
    where : str
        Named in errors.
    channels : {'exact', 'intersect'}
        See :func:`match_channels`.
    window_n : int, optional
        Window length (samples) to check against the encoder's ``n_times``.
    new_subjects : bool
        Accept subjects the checkpoint was not trained on (:func:`unseen_subjects`): each gets a new input
        layer, initialised as a fresh encoder's (standard normal / sqrt(n_chans)), to be trained on its task data; everything
        after the input layers is the checkpoint's. (Per-subject input layers: Défossez et al. 2023.)

    Returns
    -------
    encoder : BrainEncoder
        ``n_chans`` = the shards' ``n_chans_max``, ``n_subjects`` = the shards' subjects.

    Raises
    ------
    InputError
        Subjects or channels do not match (see :func:`match_channels`); the shards' ``sfreq`` or audio feature
        count differs from the checkpoint's (brain-only shards, ``n_features`` 0, take any).
    """
    cfg = dict(contract.encoder)
    if abs(manifest.sfreq - float(cfg["sfreq"])) > 1e-6:
        raise InputError(f"{where}: shards at {manifest.sfreq} Hz, checkpoint trained at {cfg['sfreq']} Hz")
    if manifest.n_features and manifest.n_features != int(cfg["n_features"]):  # 0: brain-only
        raise InputError(
            f"{where}: shards have {manifest.n_features} audio features, the checkpoint {cfg['n_features']}; "
            "pack with the same audio config (channels_from= copies it)"
        )
    if window_n is not None and int(window_n) != int(cfg["n_times"]):
        raise InputError(f"{where}: windows of {window_n} samples, the checkpoint's encoder takes {cfg['n_times']}")
    if cfg.get("input") == "spatial":  # no weight per subject or channel: any subject with electrode positions
        return spatial_encoder_for_shards(contract, weights, manifest, where)
    rows = match_channels(contract, manifest, where, channels, new_subjects)
    cfg = encoder_config_for(contract, manifest)
    encoder = build_encoder(**cfg)
    if weights is None:
        return encoder
    old = weights["subject_layers.weight"]  # (n_subjects_ckpt, n_chans_ckpt, projected)
    new = torch.zeros(cfg["n_subjects"], cfg["n_chans"], old.shape[2], dtype=old.dtype)
    fresh = encoder.subject_layers.weight.detach()
    for subject, info in manifest.subjects.items():
        if subject not in contract.subjects:  # a new patient: a fresh input layer
            logger.info(
                "%s: subject %s is new to the checkpoint: a new input layer, trained on its data", where, subject
            )
            new[info.index] = fresh[info.index].to(old.dtype)
            continue
        src = int(contract.subjects[subject]["index"])
        for j, row in enumerate(rows[subject]):
            if row is not None:
                new[info.index, j] = old[src, row]
    weights = dict(weights)
    weights["subject_layers.weight"] = new
    encoder.load_state_dict(weights)
    return encoder


def model_for_shards(
    ckpt: str | Path, manifest: Manifest, shards: str | Path, channels: str = "exact", window_n: int | None = None
) -> tuple[torch.nn.Module, CheckpointContract]:
    """The embedding model of a pretraining or finetuning checkpoint, laid out for a shard set.

    Parameters
    ----------
    ckpt : str | Path
        Checkpoint of ``ieegfm pretrain`` (the encoder) or ``ieegfm finetune`` (encoder + head).
    manifest : dict
        The shards' ``manifest.json``.
    shards : str | Path
        The shard folder (named in errors).
    channels : {'exact', 'intersect'}
        See :func:`match_channels`.
    window_n : int, optional
        Window length (samples) to check.

    Returns
    -------
    model : nn.Module
        In eval mode on CPU; ``model(x, subject)`` maps (batch, n_chans, n_times) iEEG and (batch,) subject
        indices to (batch, n_features) (``model.pooling == 'mean'``) or (batch, n_features, n_times).
    contract : CheckpointContract

    Raises
    ------
    InputError
        See :func:`load_checkpoint` and :func:`encoder_for_shards`.
    """
    from ieegfm.heads import EncoderWithHead, build_head

    state, contract = load_checkpoint(ckpt)
    where = f"ckpt={ckpt} shards={shards}"
    encoder = encoder_for_shards(contract, module_weights(state, "encoder"), manifest, where, channels, window_n)
    model: torch.nn.Module = encoder
    if contract.head is not None:
        cfg = dict(contract.head)
        head = build_head(cfg.pop("name"), **cfg)
        head.load_state_dict(module_weights(state, "head"))
        model = EncoderWithHead(encoder, head)
    return model.eval(), contract
