import pytest

from ieegfm.errors import InputError
from ieegfm.io.ieeg import channel_types
from ieegfm.io.recordings import read_recordings


def _table(tmp_path, rows, header="subject\tsession\tieeg\taudio\tstart_time"):
    p = tmp_path / "recordings.tsv"
    p.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return p


def test_reads_rows_relative_paths_and_bids_sibling(tmp_path):
    (tmp_path / "a_ieeg.edf").write_bytes(b"x")
    (tmp_path / "a_channels.tsv").write_text("name\ttype\tstatus\n")
    (tmp_path / "a.wav").write_bytes(b"x")
    blocks = read_recordings(_table(tmp_path, ["s1\td1\ta_ieeg.edf\ta.wav\t2026-03-02T08:00:00"]))
    assert blocks[0].channels == tmp_path / "a_channels.tsv"
    assert blocks[0].start_time.tzinfo is not None and blocks[0].name == "a_ieeg"


def test_empty_table(tmp_path):
    with pytest.raises(InputError, match="no rows"):
        read_recordings(_table(tmp_path, []))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"row 1: ieeg file .*missing.edf not found"):
        read_recordings(_table(tmp_path, ["s1\td1\tmissing.edf\tmissing.wav\t2026-03-02T08:00:00"]))


def test_missing_column_and_bad_time(tmp_path):
    with pytest.raises(InputError, match="missing column"):
        read_recordings(_table(tmp_path, ["s1\tx"], header="subject\tieeg"))
    (tmp_path / "a.edf").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    with pytest.raises(InputError, match="not an ISO 8601"):
        read_recordings(_table(tmp_path, ["s1\td1\ta.edf\ta.wav\tyesterday"]))


def test_channel_types_from_names_and_tsv(tmp_path):
    types, bads = channel_types(["LA1", "EKG1", "DC01", "ECG", "TRIG", "RH3"], None)
    assert types == {"LA1": "seeg", "EKG1": "ecg", "DC01": "misc", "ECG": "ecg", "TRIG": "misc", "RH3": "seeg"}
    tsv = tmp_path / "c.tsv"
    tsv.write_text("name\ttype\tstatus\tstatus_description\nLA1\tECOG\tbad\tnoisy\nRH3\tSEEG\tgood\t\n")
    types, bads = channel_types(["LA1", "RH3"], tsv)
    assert types == {"LA1": "ecog", "RH3": "seeg"} and bads == {"LA1": "noisy"}
