import io
import json
import tarfile

import pytest

from ieegfm.data.tar import meta_without_words, tar_members


def _write(path, fmt, members):
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("somedir")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)


MEMBERS = [
    ("a.json", b"{}"),
    ("a.brain.npy", bytes(range(256)) * 3),
    ("x" * 150 + ".audio.npy", b"long name"),  # needs pax / GNU long-name records
    ("dir/" * 30 + "b.json", b"prefix or long name"),
    ("empty.txt", b""),
    ("exact.bin", b"\1" * 1024),  # ends on a block boundary
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_members_match_tarfile(tmp_path, fmt):
    members = MEMBERS if fmt != tarfile.USTAR_FORMAT else [m for m in MEMBERS if len(m[0]) <= 100]
    path = tmp_path / "t.tar"
    _write(path, fmt, members)
    with tarfile.open(path) as tar:
        expected = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]
    assert expected == members
    assert [(n, bytes(d)) for n, d in tar_members(str(path))] == expected
    skipped = list(tar_members(str(path), want=lambda name: name.endswith(".json")))
    assert [n for n, _ in skipped] == [n for n, _ in members]
    assert [bytes(d) if d is not None else None for _, d in skipped] == [
        d if n.endswith(".json") else None for n, d in members
    ]


def test_tar_members_reject_corrupt_and_truncated(tmp_path):
    path = tmp_path / "t.tar"
    _write(path, tarfile.USTAR_FORMAT, MEMBERS[:2])
    data = path.read_bytes()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(data[:1100])  # the second member's header cut short
    with pytest.raises(tarfile.ReadError, match="truncated"):
        list(tar_members(str(bad)))
    flipped = bytearray(data)
    flipped[1024 + 3] ^= 0xFF  # a byte of the second header's name
    bad.write_bytes(bytes(flipped))
    with pytest.raises(tarfile.ReadError, match=r"bad tar header checksum at byte 1024"):
        list(tar_members(str(bad)))


@pytest.mark.parametrize(
    "meta",
    [
        {"block": "b", "events": [{"words": [1], "x": '", "words": ['}], "tmin": 3.0, "words": [[0.1, 0.2, "a"]]},
        {"block": "b", "tmin": 0.0, "words": [[0.0, 0.1, '"words": [ ]}'], [0.2, 0.1, "\u00e9t\u00e9"]]},
        {"block": "b", "tmin": 0.0, "words": []},
        {"block": "b", "tmin": 1.5},  # no words (a chunk without audio words)
        {"words": [[0.0, 0.1, "x"]]},
        {"events": [{"words": [[0.0, 0.1, "nested"]]}], "tmin": 2.0},  # only a nested key: the cut cannot parse
    ],
)
def test_meta_without_words_is_the_full_parse_minus_words(meta):
    data = json.dumps(meta, sort_keys=True).encode()  # as the shard writer writes it
    assert meta_without_words(memoryview(data)) == {k: v for k, v in meta.items() if k != "words"}
