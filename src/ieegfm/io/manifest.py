"""A shard folder's ``manifest.json``: its schema, the one reader and the one writer.

Every shard folder (``ieegfm pack``, ``ieegfm import-n2s``, the control shards of ``pretrain control=…``, the
subset views of ``ieegfm scale``) holds ``manifest.json`` (what the shards are: rates, channels, scalers, splits,
one entry per shard) and ``sizes.json`` (samples per shard, for WebDataset tools). :class:`Manifest` is the schema;
:func:`read_manifest` checks what readers rely on and turns a damaged file into one line; :func:`write_manifest`
writes both files atomically, ``manifest.json`` last (a folder without it is not finished).
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict  # noqa: UP035 (see ManifestDict)

from ieegfm.errors import InputError
from ieegfm.io.checksum import sha256_file

MANIFEST = "manifest.json"
SIZES = "sizes.json"
SPLITS = ("train", "val", "test")


#: ``manifest.json`` as a JSON object: what :func:`write_manifest` takes and :meth:`Manifest.to_dict` gives back.
ManifestDict = Dict[str, Any]  # noqa: UP006 (typing.Dict: autodoc takes a dict[...] alias for a class)


@dataclass(frozen=True)
class ShardEntry:
    """One tar of a split.

    Attributes
    ----------
    name : str
        Path of the tar relative to the shard folder.
    n_samples : int
        Chunks (WebDataset samples) in the tar.
    n_windows : int
        Non-overlapping windows of ``window_s`` in its chunks.
    chunk_lengths : tuple of int or None
        Brain samples of each chunk, in tar order (a length 0 marks a chunk a subset view drops); None in
        manifests of older packs.
    sha256 : str or None
        Checksum of the tar (None in manifests that did not record it).
    bytes : int or None
        Size of the tar (bytes).
    """

    name: str
    n_samples: int
    n_windows: int
    chunk_lengths: tuple[int, ...] | None = None
    sha256: str | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class SubjectEntry:
    """One subject of the shards.

    Attributes
    ----------
    index : int
        The encoder's subject layer.
    ch_names : tuple of str
        Channels after the montage, in the order stored.
    n_chans : int
        ``len(ch_names)``.
    picks : tuple of str
        File channels used.
    dropped : dict of str to str
        Channel name -> why it was dropped.
    scaler : dict or None
        Robust scaler state (``preprocess.scale_by=train``).
    coordinates : dict or None
        Electrode positions from a BIDS ``electrodes.tsv`` (:func:`ieegfm.io.electrodes.channel_coordinates`):
        ``positions`` ((x, y, z) or None per channel of ``ch_names``), ``space``, ``units``, ``electrodes`` (the
        file's name); None when the recordings table names no electrodes file.
    """

    index: int
    ch_names: tuple[str, ...]
    n_chans: int
    picks: tuple[str, ...] = ()
    dropped: dict[str, str] = field(default_factory=dict)
    scaler: dict | None = None
    coordinates: dict | None = None


@dataclass(frozen=True)
class SplitStats:
    """Statistics of one split: ``hours`` packed, ``daytime_hours``, ``by_day`` (local day index -> hours),
    ``n_chunks``, ``n_windows`` and ``blocks`` (block ids)."""

    hours: float = 0.0
    daytime_hours: float = 0.0
    by_day: dict[str, float] = field(default_factory=dict)
    n_chunks: int = 0
    n_windows: int = 0
    blocks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``, read and checked once (:func:`read_manifest`): a frozen, typed view of it.

    The keys every reader relies on (:data:`REQUIRED`) are typed attributes; provenance (``config``, ``blocks``,
    ``subset``, ``control``, ...) is kept as read. :meth:`to_dict` gives the JSON object back unchanged, from which
    a writer derives a new manifest (``write_manifest(folder, {**m.to_dict(), ...})``).

    Attributes
    ----------
    sfreq : float
        Brain sampling rate (Hz).
    audio_sfreq : float
        Rate of the stored audio bins (Hz; ``sfreq`` unless packed with ``audio.pool_s``).
    window_s : float
        Window length (s).
    n_chans_max : int
        Channels of the widest subject (inputs are zero-padded to it).
    n_features : int
        Audio features per frame (0: brain-only shards).
    subjects : dict of str to SubjectEntry
        Subject label -> its entry.
    shards : dict of str to tuple of ShardEntry
        Split -> its tars.
    splits : dict of str to SplitStats
        Split -> its statistics.
    timezone : str or None
        IANA time zone of the recording site.
    chunk_s, guard_s : float or None
        Chunk length and guard gap between splits (s).
    ieegfm_version : str or None
        Version that wrote the shards.
    format, scaling, blocks, skipped, anonymized, imported_from, subset, control, config : dict
        Provenance as written (empty when absent).
    audio, audio_scaler, channels_from : dict or None
        Audio target description, its scaler state, the pack whose channels were reused.
    length_mismatches : tuple of dict
    empty_splits : tuple of str
    bands : tuple of str
        The brain bands of ``ieegfm pack``'s rows, in order (``preprocess.bands``; ``("lfp",)`` for packs written
        before bands existed): each band's block of ``ch_names`` (``<channel>@<band>`` past ``lfp``).
    """

    sfreq: float
    window_s: float
    n_chans_max: int
    n_features: int
    subjects: dict[str, SubjectEntry]
    shards: dict[str, tuple[ShardEntry, ...]]
    splits: dict[str, SplitStats]
    audio_sfreq: float
    timezone: str | None = None
    chunk_s: float | None = None
    guard_s: float | None = None
    ieegfm_version: str | None = None
    format: dict = field(default_factory=dict)
    scaling: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    anonymized: dict = field(default_factory=dict)
    imported_from: dict = field(default_factory=dict)
    subset: dict = field(default_factory=dict)
    control: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    audio: dict | None = None
    audio_scaler: dict | None = None
    channels_from: dict | None = None
    length_mismatches: tuple[dict, ...] = ()
    empty_splits: tuple[str, ...] = ()
    bands: tuple[str, ...] = ("lfp",)
    raw: ManifestDict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, m: ManifestDict) -> Manifest:
        """The typed view of a checked ``manifest.json`` object (see :func:`read_manifest` for the checks)."""
        subjects = {
            s: SubjectEntry(
                index=int(v["index"]),
                ch_names=tuple(v["ch_names"]),
                n_chans=int(v.get("n_chans", len(v["ch_names"]))),
                picks=tuple(v.get("picks", ())),
                dropped=dict(v.get("dropped", {})),
                scaler=v.get("scaler"),
                coordinates=v.get("coordinates"),
            )
            for s, v in m["subjects"].items()
        }
        shards = {
            sp: tuple(
                ShardEntry(
                    name=e["name"],
                    n_samples=int(e["n_samples"]),
                    n_windows=int(e["n_windows"]),
                    chunk_lengths=None if e.get("chunk_lengths") is None else tuple(int(n) for n in e["chunk_lengths"]),
                    sha256=e.get("sha256"),
                    bytes=e.get("bytes"),
                )
                for e in entries
            )
            for sp, entries in m["shards"].items()
        }
        splits = {
            sp: SplitStats(
                hours=float(v.get("hours", 0.0)),
                daytime_hours=float(v.get("daytime_hours", 0.0)),
                by_day=dict(v.get("by_day", {})),
                n_chunks=int(v.get("n_chunks", 0)),
                n_windows=int(v.get("n_windows", 0)),
                blocks=tuple(v.get("blocks", ())),
            )
            for sp, v in m["splits"].items()
        }
        provenance = ("format", "scaling", "blocks", "skipped", "anonymized", "imported_from", "subset", "control")
        return cls(
            sfreq=float(m["sfreq"]),
            window_s=float(m["window_s"]),
            n_chans_max=int(m["n_chans_max"]),
            n_features=int(m["n_features"]),
            subjects=subjects,
            shards=shards,
            splits=splits,
            audio_sfreq=float(m.get("audio_sfreq") or m["sfreq"]),
            timezone=m.get("timezone"),
            chunk_s=m.get("chunk_s"),
            guard_s=m.get("guard_s"),
            ieegfm_version=m.get("ieegfm_version"),
            **{k: copy.deepcopy(m.get(k) or {}) for k in provenance},
            config=copy.deepcopy(m.get("config") or {}),
            audio=copy.deepcopy(m.get("audio")),
            audio_scaler=copy.deepcopy(m.get("audio_scaler")),
            channels_from=copy.deepcopy(m.get("channels_from")),
            length_mismatches=tuple(m.get("length_mismatches") or ()),
            empty_splits=tuple(m.get("empty_splits") or ()),
            bands=tuple(m.get("bands") or ("lfp",)),
            raw=copy.deepcopy(m),
        )

    def to_dict(self) -> ManifestDict:
        """The JSON object as read (a deep copy): the starting point of a derived manifest."""
        return copy.deepcopy(self.raw)

    def entries(self, split: str) -> tuple[ShardEntry, ...]:
        """The tars of ``split`` (empty when the split has none)."""
        return self.shards.get(split, ())

    def n_windows(self, split: str) -> int:
        """Non-overlapping windows of ``split`` over its tars."""
        return sum(e.n_windows for e in self.entries(split))

    @property
    def window_n(self) -> int:
        """Window length in brain samples, ``round(window_s * sfreq)``."""
        return int(round(self.window_s * self.sfreq))

    @property
    def audio_step(self) -> int:
        """Brain samples per stored audio bin, ``round(sfreq / audio_sfreq)``."""
        return int(round(self.sfreq / self.audio_sfreq))

    def subject_index(self) -> dict[str, int]:
        """Subject label -> the encoder's subject layer."""
        return {s: v.index for s, v in self.subjects.items()}

    def subject_hours(self) -> dict[str, dict[str, float]]:
        """Subject label -> hours packed per split, for the subjects whose hours are known on their own: the only
        subject of a pack, or of a pack of a cohort (``cohort.packs[].hours``). Subjects packed together in one
        table share their pack's statistics and are left out."""
        if len(self.subjects) == 1:
            return {next(iter(self.subjects)): {sp: st.hours for sp, st in self.splits.items()}}
        packs = (self.raw.get("cohort") or {}).get("packs") or []
        return {p["subjects"][0]: dict(p["hours"]) for p in packs if len(p.get("subjects", ())) == 1 and "hours" in p}


#: key -> what a reader needs it to be
REQUIRED = {
    "sfreq": "a positive number (Hz)",
    "window_s": "a positive number (s)",
    "n_chans_max": "a non-negative integer",
    "n_features": "a non-negative integer",
    "subjects": "an object of subjects, each with an integer index and a list of channel names",
    "shards": "an object of splits, each a list of shards with a name, n_samples and n_windows",
    "splits": "an object of split statistics",
}


def new_split_stats() -> dict:
    """Empty statistics of a split, filled chunk by chunk with :func:`count_chunk`."""
    return {"hours": 0.0, "daytime_hours": 0.0, "by_day": {}, "n_chunks": 0, "n_windows": 0, "blocks": []}


def count_chunk(stats: dict, hours: float, n_windows: int, day: int = 0, daytime: bool | None = None) -> None:
    """Add one chunk of ``hours`` and ``n_windows`` windows, recorded on local ``day`` (daytime or not; None:
    no clock, as for imported trials) to a split's statistics."""
    stats["hours"] += hours
    if daytime:
        stats["daytime_hours"] += hours
    if daytime is not None:
        stats["by_day"][str(day)] = stats["by_day"].get(str(day), 0.0) + hours
    stats["n_chunks"] += 1
    stats["n_windows"] += n_windows


def _problem(m: dict) -> str | None:
    """The first key of :data:`REQUIRED` that is missing or not what readers need, or None."""

    def number(v, positive=True) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)

    def count(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    checks = {
        "sfreq": lambda v: number(v),
        "window_s": lambda v: number(v),
        "n_chans_max": count,
        "n_features": count,
        "subjects": lambda v: (
            isinstance(v, dict)
            and all(
                isinstance(s, dict) and count(s.get("index")) and isinstance(s.get("ch_names"), list)
                for s in v.values()
            )
        ),
        "shards": lambda v: (
            isinstance(v, dict)
            and all(
                isinstance(entries, list)
                and all(
                    isinstance(e, dict)
                    and isinstance(e.get("name"), str)
                    and count(e.get("n_samples"))
                    and count(e.get("n_windows"))
                    for e in entries
                )
                for entries in v.values()
            )
        ),
        "splits": lambda v: isinstance(v, dict),
    }
    for key, ok in checks.items():
        if key not in m or not ok(m[key]):
            return key
    return None


def read_manifest(folder: str | Path) -> Manifest:
    """Read and check ``<folder>/manifest.json``.

    Parameters
    ----------
    folder : str | Path
        A shard folder.

    Returns
    -------
    manifest : Manifest
        Frozen and typed (:class:`Manifest`); :meth:`Manifest.to_dict` gives the JSON object back.

    Raises
    ------
    InputError
        No manifest (not a shard folder, or a pack that did not finish), not JSON (a damaged copy), or a key of
        :data:`REQUIRED` missing or malformed (names the key and what was expected).
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(
            f"shards={folder}: no {MANIFEST}; expected a folder written by `ieegfm pack` (one that finished)"
        )
    try:
        m = json.loads(path.read_bytes())
    except (ValueError, OSError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"shards={folder}: {MANIFEST} is not readable JSON ({msg}); a damaged copy?") from None
    if not isinstance(m, dict):
        raise InputError(f"shards={folder}: {MANIFEST} holds a {type(m).__name__}; expected an object")
    bad = _problem(m)
    if bad is not None:
        shown = json.dumps(m.get(bad), default=str)[:80] if bad in m else "missing"
        raise InputError(f"shards={folder}: {MANIFEST} key {bad!r} is {shown}; expected {REQUIRED[bad]}")
    return Manifest.from_dict(m)


def write_json_atomic(obj, path: str | Path, sort_keys: bool = True) -> None:
    """Write ``obj`` as JSON (indent 1; non-JSON values as ``str``) to ``path`` through a temporary name and a
    rename, so a crash never leaves a partial file under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=sort_keys, default=str))
    os.replace(tmp, path)


def write_manifest(folder: str | Path, manifest: ManifestDict) -> Path:
    """Write ``sizes.json`` and then ``manifest.json`` into ``folder``, each atomically (temporary name, rename).

    Returns
    -------
    path : Path
        ``<folder>/manifest.json``.

    Raises
    ------
    InputError
        The manifest misses or malforms a key of :data:`REQUIRED` (a bug in its writer; nothing is written).
    """
    folder = Path(folder)
    bad = _problem(manifest)  # type: ignore[arg-type]
    if bad is not None:
        raise InputError(f"{folder}: refusing to write a manifest whose key {bad!r} is not {REQUIRED[bad]}")
    sizes = {e["name"]: e["n_samples"] for entries in manifest["shards"].values() for e in entries}
    write_json_atomic(sizes, folder / SIZES)
    write_json_atomic(manifest, folder / MANIFEST)
    return folder / MANIFEST


def withdraw_manifest(folder: str | Path) -> None:
    """Remove ``manifest.json`` and ``sizes.json`` (before a rewrite: the folder stops looking finished)."""
    for name in (MANIFEST, SIZES):
        (Path(folder) / name).unlink(missing_ok=True)


def verify_shards(folder: str | Path) -> dict:
    """Check every shard a manifest lists: present, of the recorded size, of the recorded sha256.

    Damage inside a shard's arrays is invisible while reading (only tar headers carry checksums): run this after
    copying shards, or when training reports corrupt shards.

    Returns
    -------
    report : dict
        ``{"shards": n, "bytes": total, "ok": n_ok}`` when every shard is intact.

    Raises
    ------
    InputError
        A damaged manifest (see :func:`read_manifest`), or shards missing or damaged (how many, and the first ones
        with what is wrong).
    """
    m = read_manifest(folder)
    bad, n, total = [], 0, 0
    for entries in m.shards.values():
        for e in entries:
            n += 1
            path = Path(folder) / e.name
            if not path.is_file():
                bad.append(f"{e.name}: missing")
                continue
            size = path.stat().st_size
            total += size
            if e.bytes is not None and size != e.bytes:
                bad.append(f"{e.name}: {size} bytes, not {e.bytes}")
            elif e.sha256 is not None and sha256_file(path) != e.sha256:
                bad.append(f"{e.name}: sha256 differs from the manifest's")
    if bad:
        raise InputError(
            f"shards={folder}: {len(bad)} of {n} shard(s) damaged or missing ({'; '.join(bad[:3])}"
            f"{f'; and {len(bad) - 3} more' if len(bad) > 3 else ''}); copy them again or repack"
        )
    return {"shards": n, "bytes": total, "ok": n}
