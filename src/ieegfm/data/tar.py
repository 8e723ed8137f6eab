"""Reading ieegfm shards: a streaming ustar/pax/GNU tar parser, zero-copy ``.npy`` decoding, sample decoding.

One read per member, checksums verified; corrupt samples go to a ``handler`` (:class:`CorruptCounter`), and a stream
stops with an error after ``MAX_FAILED_SHARDS_IN_A_ROW`` unreadable shards rather than skip forever.
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import re
import tarfile
from collections.abc import Iterator

import numpy as np

from ieegfm.errors import InputError

logger = logging.getLogger(__name__)


class ShardReadError(Exception):
    """A shard that could not be read (to its end): ``url`` and the ``cause``."""

    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(f"{url}: {cause!r}")
        self.url, self.cause = url, cause


class CorruptCounter:
    """Handler for corrupt shards and samples: log, count and continue (``handler=`` of WebDataset stages).

    Shards are counted once each, however often they are read (every epoch, every validation); samples that do
    not decode are counted per read. Both counts live in shared memory, so the skips of DataLoader worker
    processes (forked or spawned with the loader) are seen by the main process that writes the run summary.

    Parameters
    ----------
    urls : list of str
        Every shard that may be reported (a :class:`ShardReadError` naming another one counts as a sample).
    """

    def __init__(self, urls: list[str]) -> None:
        self._index = {u: i for i, u in enumerate(urls)}
        self._urls = list(urls)
        self._flags = multiprocessing.Array("b", max(len(urls), 1))
        self._samples = multiprocessing.Value("q", 0)

    @property
    def shards(self) -> list[str]:
        """Shards found corrupt so far (in ``urls`` order), by any process sharing this counter."""
        return [u for u, f in zip(self._urls, self._flags[: len(self._urls)]) if f]

    @property
    def samples(self) -> int:
        """Samples that could not be decoded so far."""
        return int(self._samples.value)

    def mark(self, url: str) -> None:
        """Count ``url`` as a corrupt shard."""
        if url in self._index:
            self._flags[self._index[url]] = 1

    def __call__(self, exn: Exception) -> bool:
        if isinstance(exn, ShardReadError) and exn.url in self._index:
            new = not self._flags[self._index[exn.url]]
            self.mark(exn.url)
            if new:
                logger.warning("skipping the rest of a corrupt shard (%d so far): %s", len(self.shards), exn)
        else:
            with self._samples.get_lock():
                self._samples.value += 1
            logger.warning("skipping a corrupt sample (%d so far): %r", self.samples, exn)
        return True


_NPY_HEADER = re.compile(rb"'descr': '([^']+)', 'fortran_order': False, 'shape': \(([0-9, ]*)\)")


def npy_from_bytes(data: bytes | memoryview) -> np.ndarray:
    """Decode ``.npy`` bytes; C-order arrays as ieegfm writes them are read without a copy (read-only view).

    Falls back to :func:`numpy.load` for anything else (Fortran order, other header layouts).
    """
    if data[:6] == b"\x93NUMPY" and data[6] == 1:
        header_len = int.from_bytes(data[8:10], "little")
        m = _NPY_HEADER.search(data[10 : 10 + header_len])
        if m is not None:
            shape = tuple(int(v) for v in m.group(2).split(b",") if v.strip())
            return np.frombuffer(data, dtype=np.dtype(m.group(1).decode()), offset=10 + header_len).reshape(shape)
    return np.load(io.BytesIO(data), allow_pickle=False)


MAX_FAILED_SHARDS_IN_A_ROW = 50  # a stream stops with an error instead of skipping unreadable shards forever
_REGULAR = (ord("0"), 0, ord("7"))  # tar type flags of regular files (contiguous files count as regular)


def _octal(field: bytes, url: str, pos: int) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU) for large values
        return int.from_bytes(field[1:], "big")
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise tarfile.ReadError(f"{url}: invalid number in the tar header at byte {pos}") from None


def tar_members(url: str, want=None) -> Iterator[tuple[str, memoryview | None]]:
    """``(name, data)`` of the regular files of a tar, in order, reading only the bytes needed.

    ``data`` is a read-only view of the bytes read (one ``read`` call per member, which also fetches the next
    header).

    A small parser of ustar headers (with pax ``x``/``g`` and GNU ``L`` long-name records), about three times
    faster than :mod:`tarfile`, which builds a full ``TarInfo`` per member. Header checksums are verified.

    Parameters
    ----------
    url : str
        Path of a (seekable) tar file.
    want : callable, optional
        ``want(name) -> bool``; the data of members it rejects is skipped with a seek (``data`` is ``None``).

    Raises
    ------
    tarfile.ReadError
        Bad header checksum or number, or a member running past the end of the file (truncated shard).
    """
    with open(url, "rb", buffering=0) as f:
        pos, long_name, pax = 0, None, {}
        header = f.read(512)
        while True:
            if len(header) < 512 or header.count(0) == 512:  # end of archive (or a file ending on a boundary)
                if header and header.count(0) != len(header):
                    raise tarfile.ReadError(f"{url}: truncated tar header at byte {pos}")
                return
            stored = _octal(header[148:156], url, pos)
            if stored != sum(header) - sum(header[148:156]) + 256:
                raise tarfile.ReadError(f"{url}: bad tar header checksum at byte {pos} (corrupt shard?)")
            size = int(pax.get("size", _octal(header[124:136], url, pos)))
            kind = header[156]
            pos += 512
            padded = (size + 511) // 512 * 512
            if kind in (ord("x"), ord("g"), ord("L")):  # metadata records for the next member
                data = f.read(padded)[:size]
                if kind == ord("L"):
                    long_name = data.split(b"\0", 1)[0].decode()
                elif kind == ord("x"):
                    pax = _pax_records(data)
                pos += padded
                header = f.read(512)
                continue
            name = pax.get("path") or long_name
            if name is None:
                name = header[:100].split(b"\0", 1)[0].decode()
                if header[257:262] == b"ustar" and header[345]:
                    name = header[345:500].split(b"\0", 1)[0].decode() + "/" + name
            long_name, pax = None, {}
            if kind not in _REGULAR or (want is not None and not want(name)):
                f.seek(padded, 1)
                header = f.read(512)
                if kind in _REGULAR:
                    yield name, None
            else:  # one read for the data and the next header
                block = f.read(padded + 512)
                if len(block) < size:
                    raise tarfile.ReadError(f"{url}: member {name!r} truncated ({len(block)} of {size} bytes)")
                header = block[padded:]
                yield name, memoryview(block)[:size]
            pos += padded


def _pax_records(data: bytes) -> dict:
    """``key=value`` records of a pax extended header."""
    out, i = {}, 0
    while i < len(data):
        space = data.index(b" ", i)
        length = int(data[i:space])
        key, _, value = data[space + 1 : i + length - 1].partition(b"=")
        out[key.decode()] = value.decode()
        i += length
    return out


def tar_samples(src: Iterator[dict], handler=None) -> Iterator[dict]:
    """Samples of the shards named by ``{"url": path}`` items.

    Members (read with :func:`tar_members`) are grouped by key (``<key>.<ext>``), as WebDataset does; the reader
    is ieegfm's own because webdataset's generic tar iterator costs about ten times the raw read of the same
    bytes. Items of an :class:`EpochPlanner` plan also carry per-chunk ``offsets`` and ``takes`` (window index
    ranges, attached to the samples as ``__offset__`` and ``__take__``); chunks with nothing to take are skipped
    without reading their data (seeks), and reading stops after the last chunk needed. A shard that cannot be
    read, or holds more chunks than its manifest entry, is passed to ``handler`` (log, count, continue) instead
    of stopping the epoch; ``MAX_FAILED_SHARDS_IN_A_ROW`` unreadable shards in a row raise ``InputError`` (a
    resampled stream would otherwise skip forever when the shards are gone).
    """
    failures = 0  # shards in a row that could not be read
    for item in src:
        url = item["url"]
        offsets, takes = item.get("offsets"), item.get("takes")
        last = None if takes is None else max((i for i, (a, b) in enumerate(takes) if b > a), default=-1)
        state = {"index": -1, "key": None}

        def want(name: str, state=state, takes=takes) -> bool:
            key = name.partition(".")[0]
            if key != state["key"]:
                state["index"], state["key"] = state["index"] + 1, key
            i = state["index"]
            return takes is None or (i < len(takes) and takes[i][1] > takes[i][0])

        try:
            sample: dict = {}
            for name, data in tar_members(url, want):
                key, _, ext = name.partition(".")
                index = state["index"]
                if sample and key != sample["__key__"]:
                    yield sample
                    sample = {}
                if last is not None and index > last:
                    break
                if offsets is not None and index >= len(offsets):
                    raise ValueError(f"{url}: more chunks than its manifest entry lists ({len(offsets)})")
                if data is None:
                    continue  # nothing to take from this chunk: its data was skipped
                if not sample:
                    sample = {"__key__": key, "__url__": url}
                    if offsets is not None:
                        sample["__offset__"] = offsets[index]
                    if takes is not None:
                        sample["__take__"] = tuple(takes[index])
                sample[ext] = data
            if sample:
                yield sample
            failures = 0
        except Exception as exn:  # corrupt or truncated shard
            failures += 1
            if failures >= MAX_FAILED_SHARDS_IN_A_ROW:  # e.g. the shard folder is gone: fail, do not spin
                raise InputError(
                    f"{failures} shards in a row could not be read (the last, {url}: {exn!r}); expected the shard "
                    "files manifest.json lists (were they moved or deleted?)"
                ) from None
            if handler is None or not handler(ShardReadError(url, exn)):
                raise


def decode_sample(sample: dict, words: bool = True) -> dict:
    """Decode ``brain.npy``, ``audio.npy`` and ``json`` members (bytes) of one shard sample.

    ``words=False`` leaves the chunk's heard words out of ``meta`` (what cutting windows needs: the words are most of
    a chunk's JSON on a week of ambient audio), parsed about five times faster (see :func:`meta_without_words`).
    """
    return {
        "__key__": sample["__key__"],
        "brain": npy_from_bytes(sample["brain.npy"]),
        "audio": npy_from_bytes(sample["audio.npy"]),
        "meta": json.loads(bytes(sample["json"])) if words else meta_without_words(sample["json"]),
        "offset": sample.get("__offset__"),
        "take": sample.get("__take__"),
    }


def decode_windows_sample(sample: dict) -> dict:
    """:func:`decode_sample` without the words (a picklable pipeline stage for training and evaluation windows)."""
    return decode_sample(sample, words=False)


_WORDS_KEY = b', "words": ['  # the last key of a chunk's JSON (written with sort_keys=True)


def meta_without_words(data: bytes | memoryview) -> dict:
    """A chunk's JSON metadata without its ``words`` list, skipping that list instead of parsing it.

    Expects JSON with sorted keys, as ieegfm's shard writer writes it: ``words`` is then the last key and its
    list ends the object, so the text before it, closed, is the rest of the object. Quotes inside JSON strings
    are escaped, so the key cannot occur inside a word; a cut at a nested ``words`` key leaves unbalanced
    brackets, which fails to parse and falls back to parsing everything (so does an object without ``words``).
    """
    raw = bytes(data)
    cut = raw.rfind(_WORDS_KEY)
    if cut > 0 and raw.endswith(b"]}"):
        try:
            return json.loads(raw[:cut] + b"}")
        except ValueError:
            pass
    meta = json.loads(raw)
    meta.pop("words", None)
    return meta
