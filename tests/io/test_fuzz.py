"""Property/fuzz tests of every parser a hospital export reaches: arbitrary bytes and edge values give a one-line
InputError (or a valid result), never another exception, a traceback or a hang.

Bounded for CI: a fixed number of examples with a deadline per example, derandomised so that CI is reproducible
(profile ``ci``, the default). ``HYPOTHESIS_PROFILE=fuzz pytest tests/io/test_fuzz.py`` runs 50x more, randomised.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_fixtures import T0, write_block

from ieegfm.__main__ import main
from ieegfm.errors import InputError
from ieegfm.io.audio import audio_info
from ieegfm.io.events import read_events_tsv, read_words_tsv
from ieegfm.io.ieeg import iter_chunks, open_raw, probe_std, read_header
from ieegfm.io.recordings import read_channels_tsv, read_recordings

_COMMON = {"deadline": 5000, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=300, derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- building blocks: fields a hospital export or a careless edit produces ------------------------------------------
EDGE_NUMBERS = ["", " ", "n/a", "NaN", "nan", "inf", "-inf", "-1", "0", "-0", "1e308", "1e309", "-1e308", "1e-320",
                "99999999999999999999", "0x10", "1,5", "١٢", "3.", ".5", "+2", "--1", "1e", "\x00"]  # fmt: skip
EDGE_TEXT = ["", " ", "a", "LA1", "sub-01", "ü", "名前", "\ufeff", "\x00", "\x85", "\u2028", '"', '"a\tb"', "\\",
             "../../etc/passwd", "/dev/zero", ".", "2026-03-02T10:00:00", "2026-13-45T99:99", "1e999"]  # fmt: skip
BOMS = [b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]
NEWLINES = ["\n", "\r\n", "\r"]
BAD_BYTES = [b"", b"\x00", b"\xff\xfe\xfd", b"\xc3\x28", b"\x80abc", b"\t\t\t\t\t\t", b"\r\r\n\n"]


def _cell():
    return st.one_of(st.sampled_from(EDGE_NUMBERS), st.sampled_from(EDGE_TEXT), st.text(max_size=12))


@st.composite
def tables(draw, columns: list[str], extra: list[str] = ()):
    """A tab-separated table: some of ``columns`` (+ ``extra``), rows of edge cells, any BOM, newline, stray bytes."""
    cols = draw(st.lists(st.sampled_from(list(columns) + list(extra) + ["", "x"]), min_size=0, max_size=8))
    if draw(st.booleans()):  # most of the time a table that has its required columns, so rows get parsed
        cols = list(columns) + cols
    nl = draw(st.sampled_from(NEWLINES))
    rows = draw(st.lists(st.lists(_cell(), min_size=0, max_size=len(cols) + 2), max_size=5))
    text = nl.join(["\t".join(cols)] + ["\t".join(r) for r in rows]) + draw(st.sampled_from(["", nl]))
    enc = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    data = draw(st.sampled_from(BOMS)) + text.encode(enc, errors="replace")
    cut = draw(st.none() | st.integers(0, len(data)))  # a truncated file
    return (data[:cut] if cut is not None else data) + draw(st.sampled_from(BAD_BYTES))


def _one_line_or_result(call, path):
    """Call a parser: a result, or an InputError whose message is one line naming the file."""
    try:
        return call(path)
    except InputError as err:
        msg = str(err)
        assert "\n" not in msg and "\r" not in msg, msg
        assert msg, "empty message"
        return None


@given(data=tables(["subject", "session", "ieeg", "audio", "start_time"], ["channels", "words", "events"]))
def test_recordings_table_fuzz(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("tbl")
    write_block(folder, "b", T0, duration=2.0, sfreq=64.0)  # real files some rows may name: b_ieeg.edf, b_audio.wav
    path = folder / "recordings.tsv"
    path.write_bytes(data)
    blocks = _one_line_or_result(read_recordings, path)
    for b in blocks or []:  # what is accepted is usable: named existing files and an aware time
        assert b.ieeg.is_file() and b.audio.is_file() and b.subject and b.session
        assert b.start_time.tzinfo is not None


@given(data=tables(["name"], ["type", "status", "status_description", "units", "low_cutoff"]))
def test_channels_tsv_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ch") / "x_channels.tsv"
    path.write_bytes(data)
    table = _one_line_or_result(read_channels_tsv, path)
    for name, row in (table or {}).items():
        assert isinstance(name, str) and all(isinstance(v, str) for v in row.values())


@given(data=tables(["onset", "duration"], ["trial_type", "value", "sample"]))
def test_events_tsv_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ev") / "x_events.tsv"
    path.write_bytes(data)
    for e in _one_line_or_result(read_events_tsv, path) or []:
        assert math.isfinite(e.onset) and math.isfinite(e.duration) and e.duration >= 0


@given(data=tables(["onset", "duration", "word"]))
def test_words_tsv_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("w") / "x_words.tsv"
    path.write_bytes(data)
    for e in _one_line_or_result(read_words_tsv, path) or []:
        assert math.isfinite(e.onset) and math.isfinite(e.duration) and e.duration >= 0


# --- the EDF header path ---------------------------------------------------------------------------------------------
#: (offset, width) of the fixed header fields (EDF spec, Kemp et al. 1992) and of signal 0's fields for n signals.
FIXED = {"version": (0, 8), "patient": (8, 80), "recording": (88, 80), "startdate": (168, 8), "starttime": (176, 8),
         "header_bytes": (184, 8), "reserved": (192, 44), "n_records": (236, 8), "record_s": (244, 8),
         "n_signals": (252, 4)}  # fmt: skip
SIGNAL = {"label": (0, 16), "transducer": (16, 80), "unit": (96, 8), "phys_min": (104, 8), "phys_max": (112, 8),
          "dig_min": (120, 8), "dig_max": (128, 8), "prefilter": (136, 80), "samples": (216, 8)}  # fmt: skip
EDF_VALUES = EDGE_NUMBERS + ["01.01.85", "31.12.99", "99.99.99", "00.00.00", "12.00.00", "25.61.61", "EDF+C",
                             "EDF+D", "2", "1000", "32767", "-32768", "-99999999"]  # fmt: skip


@functools.cache
def edf_bytes() -> bytes:
    """A valid 4-s EDF+ (10 signals + annotations) as MNE exports it."""
    with tempfile.TemporaryDirectory() as folder:
        ieeg, _ = write_block(Path(folder), "b", T0, duration=4.0, sfreq=64.0)
        return ieeg.read_bytes()


def _field(data: bytearray, start: int, width: int, value: str | bytes) -> None:
    raw = value.encode("latin-1", errors="replace") if isinstance(value, str) else value
    data[start : start + width] = raw[:width].ljust(width, b" ")


@st.composite
def edf_mutations(draw, n_signals: int):
    """Edits of a valid EDF: header fields set to edge values, random byte flips, truncation, appended bytes."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["fixed", "signal", "flip", "cut", "append"]))
        if kind == "fixed":
            edits.append((kind, draw(st.sampled_from(sorted(FIXED))), draw(st.sampled_from(EDF_VALUES))))
        elif kind == "signal":
            name = draw(st.sampled_from(sorted(SIGNAL)))
            edits.append((kind, (name, draw(st.integers(0, n_signals - 1))), draw(st.sampled_from(EDF_VALUES))))
        elif kind == "flip":
            edits.append((kind, draw(st.integers(0, 256 * (n_signals + 1) - 1)), draw(st.integers(0, 255))))
        elif kind == "cut":
            edits.append((kind, draw(st.integers(0, 256 * (n_signals + 1) + 2000)), None))
        else:
            edits.append((kind, draw(st.binary(max_size=600)), None))
    return edits


def _apply(data: bytes, edits, n_signals: int) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        if kind == "fixed":
            _field(out, *FIXED[where], value)
        elif kind == "signal":
            name, i = where
            start, width = SIGNAL[name]
            _field(out, 256 + start * n_signals + i * width, width, value)
        elif kind == "flip" and where < len(out):
            out[where] = value
        elif kind == "cut":
            del out[where:]
        elif kind == "append":
            out += where
    return bytes(out)


@settings(max_examples=4 * settings().max_examples)
@given(st.data())
def test_edf_header_path_fuzz(tmp_path_factory, data):
    n_signals = int(edf_bytes()[252:256])
    edits = data.draw(edf_mutations(n_signals))
    path = tmp_path_factory.mktemp("fz") / "x_ieeg.edf"
    path.write_bytes(_apply(edf_bytes(), edits, n_signals))
    h = _one_line_or_result(read_header, path)
    if h is None:
        return
    # what is accepted is what the pack path can use: a finite positive rate and length, and its samples read
    assert math.isfinite(h.sfreq) and h.sfreq > 0 and h.n_times > 0 and math.isfinite(h.duration)
    if h.declared_duration is not None:
        assert math.isfinite(h.declared_duration) and h.declared_duration >= 0
    assert h.meas_date is None or h.meas_date.tzinfo is not None
    raw = open_raw(path)
    picks = h.neural[:2] or h.ch_names[:1]
    assert probe_std(raw, picks, n_probes=2, probe_s=1.0).shape == (len(picks),)
    first = next(iter_chunks(raw, picks, 1.0))
    assert first.shape[0] == len(picks)


@given(data=st.binary(max_size=400), name=st.sampled_from(["x.edf", "x.bdf", "x.wav", "x.vhdr", "x.fif"]))
def test_arbitrary_bytes_as_a_recording(tmp_path_factory, data, name):
    path = tmp_path_factory.mktemp("any") / name
    path.write_bytes(data)
    reader = audio_info if name.endswith(".wav") else read_header
    _one_line_or_result(reader, path)


def test_fuzzed_header_through_the_cli_is_one_line(tmp_path, capsys):
    """The command line shows a parser's refusal as one line and exit 2 (no traceback), e.g. a NaN record length."""
    ieeg, wav = write_block(tmp_path / "d", "b", T0, duration=4.0, sfreq=64.0)
    bad = bytearray(ieeg.read_bytes())
    _field(bad, *FIXED["record_s"], "nan")
    ieeg.write_bytes(bytes(bad))
    table = tmp_path / "d" / "recordings.tsv"
    table.write_text(f"subject\tsession\tieeg\taudio\tstart_time\n01\t1\t{ieeg.name}\t{wav.name}\t{T0.isoformat()}\n")
    assert main(["pack", f"recordings={table}", f"out={tmp_path / 'out'}", "strict=true"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ieegfm")]  # (no bar lines)
    assert len(err) == 1 and "sfreq nan Hz" in err[0] and ieeg.name in err[0], err
    assert not (tmp_path / "out").exists()  # nothing written, no folder left behind


def test_table_with_bom_crlf_and_latin1_paths_reads(tmp_path):
    """Exports from spreadsheet programs: a UTF-8 BOM, CRLF line ends; a Latin-1 table is refused in one line."""
    ieeg, wav = write_block(tmp_path, "b", T0, duration=2.0, sfreq=64.0)
    row = f"subject\tsession\tieeg\taudio\tstart_time\r\n01\t1\t{ieeg.name}\t{wav.name}\t{T0.isoformat()}\r\n"
    path = tmp_path / "recordings.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + row.encode())
    (b,) = read_recordings(path)
    assert b.subject == "01" and b.start_time == T0
    path.write_bytes(row.replace("01\t1", "Müller\t1").encode("latin-1"))
    with pytest.raises(InputError, match=r"recordings.tsv.*UTF-8"):
        read_recordings(path)
