"""Which channels a pack keeps per subject: good neural channels present in every block (minus flat ones), or,
with ``channels_from=<pretraining shards>``, exactly the channels of that pack, so that its encoder applies."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ieegfm.errors import InputError
from ieegfm.io.electrodes import channel_coordinates, read_electrodes
from ieegfm.io.ieeg import IEEGHeader, open_raw, probe_std
from ieegfm.io.manifest import read_manifest
from ieegfm.io.recordings import Block

logger = logging.getLogger(__name__)

NEURAL_TYPES = ("seeg", "ecog", "dbs")


def select_channels(
    blocks: dict[str, list[tuple[Block, IEEGHeader]]],
    flat_threshold: float,
    reference: dict | None = None,
    channels_from: str | None = None,
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Raw channel picks per subject, and the channels dropped with the reason.

    Parameters
    ----------
    blocks : dict
        Subject -> its ``(block, header)`` pairs.
    flat_threshold : float
        A channel whose std is below ``max(flat_threshold, 1e-3 * median std)`` (V) in some block is flat.
    reference : dict, optional
        From :func:`channels_from_pack`: use that pack's picks (see :func:`reference_picks`).
    channels_from : str, optional
        The reference's path (named in errors).

    Returns
    -------
    picks : dict
        Subject -> raw channel names, in order.
    dropped : dict
        Subject -> {channel: reason}.

    Raises
    ------
    InputError
        A subject with no good neural channel left; see :func:`reference_picks`.
    """
    picks: dict[str, list[str]] = {}
    dropped: dict[str, dict[str, str]] = {}
    for s, own in blocks.items():
        if reference is not None:
            picks[s], dropped[s] = reference_picks(reference, s, own, str(channels_from))
            continue
        first = own[0][1]
        common = [c for c in first.neural if all(c in h.neural for _, h in own)]
        drop: dict[str, str] = {}
        for b, h in own:
            for c in h.ch_names:
                if h.ch_types[c] not in NEURAL_TYPES:
                    drop.setdefault(c, f"non-neural ({h.ch_types[c]})")
                elif c in h.bads:
                    drop.setdefault(c, f"bad: {h.bads[c]}")
                elif c not in common:
                    drop.setdefault(c, "missing from some blocks")
            std = probe_std(open_raw(b.ieeg), common)
            flat_thr = max(flat_threshold, 1e-3 * float(np.median(std)))
            for c, sd in zip(common, std):
                if sd < flat_thr:
                    drop.setdefault(c, f"flat (std {sd:.2e} V in {b.ieeg.name})")
        picks[s] = [c for c in common if c not in drop]
        dropped[s] = drop
        if drop:
            logger.info(
                "subject %s: dropped %d channel(s): %s",
                s,
                len(drop),
                ", ".join(f"{c} ({r})" for c, r in sorted(drop.items())),
            )
        if not picks[s]:
            raise InputError(f"subject {s}: no good neural channel left ({len(drop)} dropped)")
    return picks, dropped


def channels_from_pack(cfg) -> dict | None:
    """With ``cfg.channels_from=<shards>``: that pack's manifest, and its preprocessing and audio config set on
    ``cfg`` (the same montage, filters, rate and audio targets, so that an encoder pretrained on it applies).

    Returns
    -------
    reference : dict or None
        ``{"manifest": Manifest, "provenance": {"shards": str, "manifest_sha256": str}}``; None without
        ``channels_from``.

    Raises
    ------
    InputError
        No manifest in ``channels_from``.
    """
    if not cfg.get("channels_from"):
        return None
    ref = Path(cfg.channels_from)
    path = ref / "manifest.json"
    if not path.is_file():
        raise InputError(f"channels_from={ref}: no manifest.json; expected a folder written by `ieegfm pack`")
    manifest = read_manifest(ref)
    bands = list(cfg.preprocess.get("bands") or ["lfp"])
    if "bands" not in manifest.config.get("preprocess", {}) and bands != list(manifest.bands):
        raise InputError(
            f"channels_from={ref}: that pack holds bands {list(manifest.bands)}, this one asks for "
            f"preprocess.bands={bands}; expected the pretraining pack's bands"
        )
    for group in ("preprocess", "audio"):
        if group not in manifest.config:
            raise InputError(f"channels_from={ref}: its manifest.json has no config.{group}; expected a pack's")
        cfg[group] = OmegaConf.merge(cfg[group], manifest.config[group])
    logger.info(
        "channels_from=%s: channels, montage %s, preprocessing and audio targets (%s) of that pack",
        ref,
        cfg.preprocess.montage,
        cfg.audio.features,
    )
    provenance = {"shards": str(ref), "manifest_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {"manifest": manifest, "provenance": provenance}


def reference_picks(
    reference: dict, subject: str, own: list[tuple[Block, IEEGHeader]], channels_from: str
) -> tuple[list[str], dict[str, str]]:
    """The reference pack's raw channel picks for ``subject``, checked against every block of this pack.

    Raises
    ------
    InputError
        The subject is not in the reference pack, or a block lacks some of its channels (names them).
    """
    subjects = reference["manifest"].subjects
    if subject not in subjects:
        raise InputError(
            f"subject {subject!r} is not in channels_from={channels_from} (subjects {sorted(subjects)}); "
            "pack it with its own pretraining shards"
        )
    picks = list(subjects[subject].picks)
    for b, h in own:
        missing = [c for c in picks if c not in h.ch_names]
        if missing:
            raise InputError(
                f"{b.ieeg}: lacks {len(missing)} channel(s) of the pretraining shards channels_from={channels_from}: "
                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}"
            )
        bad = [c for c in picks if c in h.bads]
        if bad:
            logger.warning(
                "%s: channel(s) %s marked bad here are kept (the pretraining pack uses them)", b.ieeg.name, bad
            )
    present = {c for _, h in own for c in h.ch_names}
    dropped = {c: "not in the pretraining channel set (channels_from)" for c in sorted(present - set(picks))}
    return picks, dropped


def electrodes_files(blocks: list[Block]) -> dict[str, Path]:
    """Subject -> the BIDS ``electrodes.tsv`` its blocks name (the first; another file named by a later block of
    the same subject is a warning), every one read once here so that a bad file fails before any work.

    Raises
    ------
    InputError
        A file :func:`ieegfm.io.electrodes.read_electrodes` refuses.
    """
    files: dict[str, Path] = {}
    for b in blocks:
        if b.electrodes is None:
            continue
        first = files.setdefault(b.subject, b.electrodes)
        if first != b.electrodes:
            logger.warning(
                "subject %s: blocks name two electrodes files; %s is used, %s not", b.subject, first, b.electrodes
            )
    for path in set(files.values()):
        read_electrodes(path)
    return files


def coordinates(subject: str, ch_names: list[str], files: dict[str, Path]) -> dict:
    """``{"coordinates": ...}`` of a manifest subject (:func:`ieegfm.io.electrodes.channel_coordinates`), or {}
    without an electrodes file."""
    if subject not in files:
        return {}
    return {"coordinates": channel_coordinates(ch_names, files[subject])}
