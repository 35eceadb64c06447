"""`pack --part i/N` + `merge`: byte-identical to one pack; bad part lists refused (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augpipe import rng
from augpipe.cli.main import main
from augpipe.errors import ConfigError
from augpipe.format import parts
from augpipe.format.dataset import ShardDataset
from augpipe.format.pack import pack


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """3 classes x 4 PNGs, some larger than 64x64 (so statistics are sampled), one bad file."""
    root = tmp_path_factory.mktemp("parts") / "src"
    for c in range(3):
        for k in range(4):
            px = np.random.default_rng(10 * c + k).integers(0, 256, (40 + 13 * k, 72, 3), np.uint8)
            (root / f"c{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(px).save(root / f"c{c}" / f"{k}.png")
    (root / "c1" / "2b.png").write_bytes(b"not a png")  # skipped, in the middle of a part
    return root


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


OPTS = ["--format", "raw", "--shard-size", "0.02", "--no-progress"]  # several shards


def _pack_parts(src: Path, base: Path, n: int, extra=()) -> list[str]:
    dirs = []
    for i in range(n):
        d = base / f"part-{i}-of-{n}"
        assert main(["pack", str(src), str(d), "--part", f"{i}/{n}", *OPTS, *extra]) == 0
        dirs.append(str(d))
    return dirs


@pytest.mark.parametrize("n", [1, 3, 16])  # 16 > 13 inputs: some parts are empty
def test_merged_parts_equal_a_single_pack_byte_for_byte(src, tmp_path, n):
    assert main(["pack", str(src), str(tmp_path / "one"), *OPTS, "--shuffle", "7"]) == 0
    dirs = _pack_parts(src, tmp_path, n, ["--shuffle", "7"])
    assert not (Path(dirs[0]) / "manifest.json").exists()  # a part never opens as a dataset
    assert main(["merge", *dirs, str(tmp_path / "merged"), "--no-progress"]) == 0
    one, merged = _files(tmp_path / "one"), _files(tmp_path / "merged")
    assert len([k for k in one if k.endswith(".lmdb")]) > 2
    assert merged == one
    manifest = json.loads(one["manifest.json"])
    assert manifest["skipped"] == 1 and manifest["stats"]["pixels"] < 12 * 72 * 79


def test_parts_packed_with_other_workers_still_merge_identically(src, tmp_path):
    pack(src, tmp_path / "one", format="raw", shard_size_mb=0.02, progress=False)
    dirs = [tmp_path / f"p{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        pack(src, d, format="raw", shard_size_mb=0.02, part=(i, 2), workers=1 + i,
             progress=False)  # fmt: skip
    from augpipe.format.merge import merge

    report = merge(dirs, tmp_path / "merged", progress=False)
    assert report.packed == 12 and report.merged == 2 and len(report.skipped) == 1
    assert _files(tmp_path / "merged") == _files(tmp_path / "one")


def test_shuffle_mixes_classes_into_shards(src, tmp_path):
    pack(src, tmp_path / "sorted", format="raw", shard_size_mb=0.02, progress=False)
    pack(src, tmp_path / "mixed", format="raw", shard_size_mb=0.02, shuffle_seed=7,
         progress=False)  # fmt: skip
    a, b = ShardDataset(tmp_path / "sorted"), ShardDataset(tmp_path / "mixed")
    assert a.labels.tolist() == sorted(a.labels.tolist())
    items = sorted(p for p in src.rglob("*.png") if p.name != "2b.png")
    perm = rng.permutation(13, 7, 0)  # the sorted inputs (bad file included), permuted
    every = sorted(src.rglob("*.png"))
    expected = [int(every[k].parent.name[1]) for k in perm if every[k].name != "2b.png"]
    assert b.labels.tolist() == expected and len(items) == len(b)
    assert b.manifest["options"]["shuffle_seed"] == 7
    first = b.manifest["shards"][0]["count"]
    assert len(set(b.labels[:first].tolist())) > 1 or len(set(b.labels[first:].tolist())) > 1


def _err(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_duplicated_misordered_and_foreign_parts_are_refused(src, tmp_path, capsys):
    d = _pack_parts(src, tmp_path, 3)
    capsys.readouterr()
    out = str(tmp_path / "out")
    cases = [
        ([d[0], d[2]], "part(s) 1/3 missing"),
        ([d[0], d[1], d[1], d[2]], "part 1/3 given twice"),
        ([d[0], d[2], d[1]], "out of order: position 1 holds part 2/3"),
    ]
    for given, message in cases:
        assert main(["merge", *given, out]) == 2
        assert message in _err(capsys)
    other = tmp_path / "other"
    assert main(["pack", str(src), str(other), "--part", "1/3", *OPTS, "--quality", "80",
                 "--format", "jpeg"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["merge", d[0], str(other), d[2], out]) == 2
    assert "other inputs or options" in _err(capsys)
    assert main(["merge", d[0], out]) == 2  # a part of 3 alone
    assert "missing" in _err(capsys)
    assert not Path(out).exists()


def test_damaged_part_is_refused_and_nothing_is_written(src, tmp_path, capsys):
    d = _pack_parts(src, tmp_path, 2)
    rec = Path(d[1]) / parts.RECORDS
    data = bytearray(rec.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rec.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["merge", *d, str(tmp_path / "out"), "--no-progress"]) == 2
    assert "CRC32 mismatch" in _err(capsys)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))
    (Path(d[1]) / parts.ROWS).write_bytes(b"junk")
    assert main(["merge", *d, str(tmp_path / "out")]) == 2
    assert "records.npy is missing or changed" in _err(capsys)


def test_bad_part_arguments(src, tmp_path, capsys):
    for bad in ("3/3", "-1/2", "a/b", "1", "1/0"):
        assert main(["pack", str(src), str(tmp_path / "p"), f"--part={bad}"]) == 2
        assert "part: expected 'i/N'" in _err(capsys)
    with pytest.raises(ConfigError, match="part"):
        parts.parse_part((True, 2))
    assert main(["merge", str(tmp_path / "only")]) == 2
    assert "PART... OUT" in _err(capsys)
    assert main(["pack", str(src), str(tmp_path / "ds"), *OPTS]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "ds"), str(tmp_path / "out")]) == 2
    assert "that is a packed dataset" in _err(capsys)


def test_stale_temp_dirs_of_other_machines_are_left_alone(src, tmp_path):
    from augpipe.format.assemble import _host

    dead = 2**22 + 12345  # above the default pid_max: no such process
    mine = tmp_path / f".p.tmp-{_host()}-{dead}"
    old_style = tmp_path / f".p.tmp-{dead}"
    other = tmp_path / f".p.tmp-another-host.example-{dead}"
    for d in (mine, old_style, other):
        d.mkdir()
    pack(src, tmp_path / "p", format="raw", part=(0, 2), progress=False)
    assert not mine.exists() and not old_style.exists() and other.exists()
    assert (tmp_path / "p" / parts.PART_JSON).is_file()


def test_a_finished_part_is_replaced_only_with_overwrite(src, tmp_path, capsys):
    d = str(tmp_path / "p0")
    args = ["pack", str(src), d, "--part", "0/2", *OPTS]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2 and "already exists" in _err(capsys)
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["pack", str(src), str(tmp_path / "ds"), *OPTS]) == 0
    capsys.readouterr()
    ds_as_part = ["pack", str(src), str(tmp_path / "ds"), "--part", "0/2", *OPTS, "--overwrite"]
    assert main(ds_as_part) == 2 and "is not a pack part" in _err(capsys)


@pytest.mark.parametrize(
    "options",
    [
        {"format": "jpeg", "quality": 80, "short_side": 50},
        {"format": "jpeg", "restart_rows": True, "max_side": 60},
        {"format": "raw", "max_pixels": 3000},  # the larger images are skipped
    ],
)
def test_merge_equals_one_pack_for_other_options(src, tmp_path, options):
    from augpipe.format.merge import merge

    kw = dict(shard_size_mb=0.01, progress=False, shuffle_seed=3, **options)
    pack(src, tmp_path / "one", **kw)
    dirs = [tmp_path / f"p{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        pack(src, d, part=(i, 2), **kw)
    merge(dirs, tmp_path / "merged", progress=False)
    assert _files(tmp_path / "merged") == _files(tmp_path / "one")
