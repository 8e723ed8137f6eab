"""Pack phase 1: every block's headers read and checked before any sample is (lazily, with MNE and soundfile).

A block whose files cannot be used is skipped with a warning naming the file (an error with ``strict=true``);
a header that declares another length than its file holds is a warning recorded in the manifest, never silent.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace

from tqdm.auto import tqdm

from ieegfm.errors import ConfigError, InputError
from ieegfm.io.audio import AudioInfo, audio_info
from ieegfm.io.events import Event, read_events_tsv, read_words_tsv
from ieegfm.io.ieeg import IEEGHeader, read_header
from ieegfm.io.recordings import Block
from ieegfm.shards.clock import block_start

logger = logging.getLogger(__name__)

#: Audio may start or end this much (s) inside its iEEG block before the block counts as mismatched.
ALIGN_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class BlockInfo:
    """What phase 1 learns about one block.

    Attributes
    ----------
    block : Block
        Its row of the recordings table.
    header : IEEGHeader
        The iEEG file's header.
    offset : float
        Start of the audio on the iEEG clock (s; positive: the audio starts later).
    t0, t1 : float
        The interval (s, iEEG clock) both files cover.
    events, words : list of Event | None
        ``events.tsv`` rows (iEEG clock) and the transcript's words (moved from the audio clock to the iEEG clock).
    part : int | None
        Index of the stretch ``[t0, t1)`` this is of its block (``split.stretches``), None: the whole block.
    """

    block: Block
    header: IEEGHeader
    offset: float
    t0: float
    t1: float
    events: list[Event] | None = None
    words: list[Event] | None = None
    part: int | None = None

    @property
    def id(self) -> str:
        """``<subject>_<file stem>`` (``_part-<k>`` for a stretch): the key in work files, shard keys, the manifest."""
        base = f"{self.block.subject}_{self.block.name}"
        return base if self.part is None else f"{base}_part-{self.part:02d}"

    @property
    def start(self) -> dt.datetime:
        """When its iEEG starts (:func:`~ieegfm.shards.clock.block_start`)."""
        return block_start(self.block, self.header)


def skip_or_raise(err: InputError, b: Block, strict: bool, skipped: dict[str, str]) -> None:
    """Raise ``err`` (``strict``), or log it and record the block under ``skipped``."""
    if strict:
        raise err
    logger.warning("skipping block %s: %s", b.ieeg.name, err)
    skipped[str(b.ieeg)] = str(err)


def length_mismatches(h: IEEGHeader, a: AudioInfo) -> list[dict]:
    """Header-vs-file length differences of a block's iEEG (EDF/BDF records) and audio (WAV data size)."""
    out = []
    if h.declared_duration is not None:
        what = "EDF header declares" if h.path.suffix.lower() in (".edf", ".bdf") else "BrainVision header declares"
        out.append(
            {
                "file": str(h.path),
                "kind": f"{what.split()[0]} header vs file",
                "declared_s": h.declared_duration,
                "held_s": h.duration,
                "message": f"{h.path}: the {what} {h.declared_duration:.1f} s"
                f"{' of data records' if 'EDF' in what else ' (DataPoints)'}, the file holds {h.duration:.1f} s "
                "(a truncated copy or a crashed recorder?)",
            }
        )
    if a.declared_samples is not None:
        declared, held = a.declared_samples / a.sfreq, a.duration
        out.append(
            {
                "file": str(a.path),
                "kind": "WAV header vs file",
                "declared_s": declared,
                "held_s": held,
                "message": f"{a.path}: the WAV header declares {declared:.1f} s, the file holds {held:.1f} s "
                "(a truncated copy?)",
            }
        )
    return out


def align(b: Block, header: IEEGHeader, audio_duration: float) -> tuple[float, float, float]:
    """Offset of the audio in iEEG time and the shared interval ``(offset, t0, t1)`` (s).

    Raises
    ------
    InputError
        The audio does not cover its iEEG block (within :data:`ALIGN_TOLERANCE_S`).
    """
    if b.audio_onset is not None:  # a stimulus within its recording: only the stretch it covers is packed
        offset = b.audio_onset
        if not 0.0 <= offset < header.duration:
            raise InputError(
                f"{b.ieeg}: audio_onset {offset:g} s (audio.onset / the stim_file's events.tsv onset) is outside "
                f"the {header.duration:.1f}-s recording; expected 0 <= onset < {header.duration:.1f}"
            )
        return offset, offset, min(header.duration, offset + audio_duration)
    offset = (b.start_time - block_start(b, header)).total_seconds()
    t0, t1 = max(0.0, offset), min(header.duration, offset + audio_duration)
    if offset > ALIGN_TOLERANCE_S or offset + audio_duration < header.duration - ALIGN_TOLERANCE_S:
        raise InputError(
            f"{b.audio}: audio covers {max(t1 - t0, 0):.1f} s of the {header.duration:.1f} s iEEG "
            f"block {b.ieeg.name} (audio starts {offset:+.1f} s after it); expected audio at least as "
            "long as its iEEG block"
        )
    return offset, t0, t1


def read_block(b: Block, strict: bool, mismatches: list[dict]) -> BlockInfo:
    """Read and check one block's headers, events and words (length mismatches appended to ``mismatches``).

    Raises
    ------
    InputError
        Unreadable iEEG or audio, audio not covering the block, no neural channel, bad events or words; with
        ``strict`` also a header declaring another length than its file holds.
    """
    h = read_header(b.ieeg, b.channels)
    a = audio_info(b.audio)
    for entry in length_mismatches(h, a):  # header vs file: never lose data silently
        if strict:
            raise InputError(entry["message"])
        logger.warning("%s; using what the file holds (strict=true: an error)", entry["message"])
        mismatches.append(entry)
    offset, t0, t1 = align(b, h, a.duration)
    extra = offset + a.duration - (h.declared_duration or h.duration)  # (a truncated iEEG is said above)
    if extra > ALIGN_TOLERANCE_S:  # audio past the iEEG's end has no brain to pair with: said, not silently dropped
        message = (f"{b.audio}: the audio runs {extra:.1f} s past the end of its {h.duration:.1f}-s iEEG block "
                   f"{b.ieeg.name}; those {extra:.1f} s are not packed")  # fmt: skip
        if strict:
            raise InputError(message + " (strict=true)")
        logger.warning("%s", message)
        mismatches.append({"file": str(b.audio), "kind": "audio longer than its iEEG block (the rest is not packed)",
                           "declared_s": h.duration, "held_s": offset + a.duration})  # fmt: skip
    if not h.neural:
        raise InputError(
            f"{b.ieeg}: no neural (sEEG/ECoG) channel left after dropping non-neural and bad channels; "
            f"found {h.ch_names[:8]}..."
        )
    events = read_events_tsv(b.events) if b.events is not None else None
    words = None
    if b.words is not None:  # transcript on the audio clock -> the iEEG clock of events and tmin
        words = [Event(w.onset + offset, w.duration, w.trial_type, w.value) for w in read_words_tsv(b.words)]
    return BlockInfo(b, h, offset, t0, t1, events, words)


def read_blocks(blocks: list[Block], strict: bool, where: str) -> tuple[list[BlockInfo], dict[str, str], list[dict]]:
    """Phase 1: every block's :class:`BlockInfo`, the skipped blocks (file -> reason) and the length mismatches.

    Raises
    ------
    InputError
        No usable block; sampling rates differing within a session; with ``strict`` any bad block.
    """
    skipped: dict[str, str] = {}
    mismatches: list[dict] = []
    infos = []
    for b in tqdm(blocks, desc="headers", unit="block", leave=False):
        try:
            infos.append(read_block(b, strict, mismatches))
        except InputError as err:
            skip_or_raise(err, b, strict, skipped)
    if not infos:
        raise InputError(f"{where}: no usable block ({len(skipped)} skipped; see the warnings above)")
    first_of_session: dict[tuple[str, str], BlockInfo] = {}
    for info in infos:
        first = first_of_session.setdefault((info.block.subject, info.block.session), info)
        f1, f2 = first.header.sfreq, info.header.sfreq
        if abs(f1 - f2) > 1e-6 * f1:
            raise InputError(
                f"{info.block.ieeg}: sfreq {f2} Hz differs from {f1} Hz of {first.block.ieeg.name} in the same "
                f"session (subject {info.block.subject}, session {info.block.session}); expected one sampling rate "
                "per session"
            )
    return infos, skipped, mismatches


def cut_stretches(infos: list[BlockInfo], n: int) -> list[BlockInfo]:
    """Each block's shared interval ``[t0, t1)`` cut into ``n`` contiguous stretches of equal length, each a block
    of its own for the split (``split.stretches``: one long run per patient, as a story heard once); ``n=1`` returns
    ``infos`` unchanged.

    Raises
    ------
    ConfigError
        ``n`` below 1.
    """
    if n < 1:
        raise ConfigError(f"split.stretches={n}: expected at least 1 (1: split by whole blocks)")
    if n == 1:
        return infos
    out = []
    for info in infos:
        edges = [info.t0 + (info.t1 - info.t0) * k / n for k in range(n + 1)]
        out += [replace(info, t0=edges[k], t1=edges[k + 1], part=k) for k in range(n)]
    return out
