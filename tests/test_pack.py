"""pack(): sources, conversions, round trips, bad inputs, --strict, determinism, interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augpipe.cli.main import main
from augpipe.errors import ConfigError, DatasetError, InputImageError, UserError
from augpipe.format.dataset import ShardDataset
from augpipe.format.pack import pack


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth image (JPEG-friendly), so PSNR after re-encoding is meaningful."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [np.sin(xx * rng.uniform(2, 6) + yy * rng.uniform(2, 6) + rng.uniform(0, 6))
             for _ in range(3)]  # fmt: skip
    return ((np.stack(chans, -1) + 1) * 127.5).astype(np.uint8)


def _folder(root: Path, images: dict[str, np.ndarray], ext: str = ".png") -> Path:
    for rel, px in images.items():
        p = root / (rel + ext)
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(px).save(p)
    return root


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_raw_round_trip_is_pixel_exact(tmp_path):
    imgs = {f"b/{i}": _noise(10 + i, 17 - i, i) for i in range(4)}
    imgs |= {f"a/{i}": _noise(9, 9 + i, 10 + i) for i in range(3)}
    src = _folder(tmp_path / "src", imgs)
    report = pack(src, tmp_path / "out", format="raw", progress=False)
    assert report.packed == 7 and report.skipped == [] and report.bytes > 0
    ds = ShardDataset(tmp_path / "out")
    assert ds.classes == ["a", "b"] and ds.encoding == "raw"
    order = [f"a/{i}" for i in range(3)] + [f"b/{i}" for i in range(4)]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    for i, key in enumerate(order):
        assert np.array_equal(ds.image(i), imgs[key])
        assert tuple(ds.sizes[i]) == imgs[key].shape[:2]
        assert np.array_equal(ds.raw(i).reshape(imgs[key].shape), imgs[key])


def test_jpeg_round_trip_is_close(tmp_path):
    imgs = {f"c/{i}": _smooth(60, 80, i) for i in range(3)}
    src = _folder(tmp_path / "src", imgs)
    pack(src, tmp_path / "out", quality=90, progress=False)
    ds = ShardDataset(tmp_path / "out")
    assert ds.encoding == "jpeg"
    for i in range(3):
        assert bytes(ds.raw(i)[:2]) == b"\xff\xd8"
        diff = ds.image(i).astype(np.float64) - imgs[f"c/{i}"]
        psnr = 10 * np.log10(255**2 / np.mean(diff**2))
        assert psnr > 35, psnr


def test_folder_source_ignores_non_images_and_hidden(tmp_path):
    src = _folder(tmp_path / "src", {"x/1": _noise(5, 5, 1), "y/sub/2": _noise(5, 5, 2)})
    (src / "x" / "notes.txt").write_text("not an image")
    (src / "x" / ".hidden.png").write_bytes(b"junk")
    (src / ".git").mkdir()
    (src / "README").write_text("top-level files are not classes")
    report = pack(src, tmp_path / "out", progress=False)
    assert report.packed == 2 and report.skipped == []
    ds = ShardDataset(tmp_path / "out")
    assert ds.classes == ["x", "y"] and ds.labels.tolist() == [0, 1]


def test_list_file_source(tmp_path):
    root = _folder(tmp_path / "imgs", {"p q/a": _noise(6, 7, 1), "b": _noise(8, 5, 2)})
    lst = tmp_path / "train.txt"
    lst.write_text("# comment\np q/a.png 2\n\nb.png 0\n")
    rc = main(["pack", "--list", str(lst), "--root", str(root), str(tmp_path / "out"),
               "--format", "raw", "--no-progress"])  # fmt: skip
    assert rc == 0
    ds = ShardDataset(tmp_path / "out")
    assert ds.labels.tolist() == [2, 0]
    assert ds.classes == ["0", "1", "2"]
    assert np.array_equal(ds.image(0), _noise(6, 7, 1))
    # ROOT OUT positional form, same result
    assert main(["pack", "--list", str(lst), str(root), str(tmp_path / "out2"),
                 "--format", "raw", "--no-progress"]) == 0  # fmt: skip
    assert _files(tmp_path / "out") == _files(tmp_path / "out2")


def test_list_file_bad_line(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("a.png 1\nb.png cat\n")
    with pytest.raises(UserError, match="line 2"):
        pack(None, tmp_path / "out", list_file=lst, root=tmp_path, progress=False)


def _write_bad_inputs(src: Path) -> dict[str, str]:
    """One of each kind of bad input in class 'bad'; returns name -> expected reason fragment."""
    d = src / "bad"
    d.mkdir(parents=True)
    (d / "empty.jpg").write_bytes(b"")
    good = src / "good"
    good.mkdir()
    Image.fromarray(_smooth(40, 40, 0)).save(good / "ok.jpg", quality=90)
    data = (good / "ok.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (d / "text.jpg").write_text("hello, I am not a JPEG")
    Image.fromarray(_noise(100, 100, 3)).save(d / "bomb.png")
    os.symlink(d / "does-not-exist.jpg", d / "dangling.jpg")
    return {
        "empty.jpg": "empty",
        "truncated.jpg": "cannot decode",
        "corrupt.png": "cannot decode",
        "text.jpg": "cannot decode",
        "bomb.png": "max-pixels",
        "dangling.jpg": "dangling",
    }


def test_bad_inputs_are_skipped_and_reported(tmp_path, capsys):
    src = tmp_path / "src"
    expected = _write_bad_inputs(src)
    rc = main(["pack", str(src), str(tmp_path / "out"), "--max-pixels", "5000", "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "packed 1 images, 6 skipped" in err and "skipped.tsv" in err
    lines = (tmp_path / "out" / "skipped.tsv").read_text().splitlines()
    assert lines[0] == "path\treason"
    reasons = dict(line.split("\t") for line in lines[1:])
    assert {Path(p).name for p in reasons} == set(expected)
    for path, reason in reasons.items():
        assert expected[Path(path).name] in reason, (path, reason)
    ds = ShardDataset(tmp_path / "out")
    assert len(ds) == 1 and ds.classes == ["bad", "good"] and ds.labels.tolist() == [1]
    assert ds.manifest["skipped"] == 6


def test_strict_fails_on_first_bad_input(tmp_path, capsys):
    src = tmp_path / "src"
    _write_bad_inputs(src)
    out = tmp_path / "out"
    rc = main(["pack", str(src), str(out), "--strict", "--max-pixels", "5000", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bomb.png" in err[0]  # first bad file in sorted order
    assert not out.exists()
    assert list(tmp_path.glob(".out.tmp-*")) == []
    with pytest.raises(InputImageError, match="bomb.png"):
        pack(src, out, strict=True, progress=False, max_pixels=5000)


def test_pillow_bomb_check_does_not_abort_the_run(tmp_path, monkeypatch):
    src = _folder(tmp_path / "src", {"a/big": _noise(60, 60, 0)})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would raise at 200 pixels
    report = pack(src, tmp_path / "out", progress=False)
    assert report.packed == 1 and Image.MAX_IMAGE_PIXELS == 100


def test_all_inputs_bad_is_an_error(tmp_path):
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "x.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 inputs"):
        pack(tmp_path / "src", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_workers_give_byte_identical_output(tiny_folder, tmp_path):
    kw = dict(shard_size_mb=0.008, max_side=40, progress=False)
    r1 = pack(tiny_folder, tmp_path / "w1", workers=1, **kw)
    r2 = pack(tiny_folder, tmp_path / "w2", workers=2, **kw)
    assert r1.shards > 1 and r1.packed == r2.packed == 24
    assert _files(tmp_path / "w1") == _files(tmp_path / "w2")
    ds = ShardDataset(tmp_path / "w2")
    assert len(ds) == 24 and max(ds.sizes.max(axis=1)) <= 40
    assert all(ds.image(i).shape[:2] == tuple(ds.sizes[i]) for i in range(len(ds)))


def test_shards_respect_budget_and_are_contiguous(tmp_path):
    imgs = {f"a/{i:02d}": _noise(40, 40, i) for i in range(12)}  # 4800 B each as raw
    src = _folder(tmp_path / "src", imgs)
    pack(src, tmp_path / "out", format="raw", shard_size_mb=12000 / 2**20, progress=False)
    ds = ShardDataset(tmp_path / "out")
    shards = ds.manifest["shards"]
    assert [s["count"] for s in shards] == [2] * 6
    assert [s["first"] for s in shards] == [0, 2, 4, 6, 8, 10]
    for i in range(12):
        assert np.array_equal(ds.image(i), imgs[f"a/{i:02d}"])


def test_downscale_never_upscales(tmp_path):
    src = _folder(tmp_path / "src", {"a/wide": _smooth(40, 80, 0), "a/small": _smooth(10, 12, 1)})
    pack(src, tmp_path / "m", max_side=32, format="raw", progress=False)
    pack(src, tmp_path / "s", short_side=20, format="raw", progress=False)
    assert ShardDataset(tmp_path / "m").sizes.tolist() == [[10, 12], [16, 32]]
    assert ShardDataset(tmp_path / "s").sizes.tolist() == [[10, 12], [20, 40]]
    with pytest.raises(ConfigError, match="max_side/short_side"):
        pack(src, tmp_path / "x", max_side=10, short_side=10, progress=False)


def test_mode_conversions(tmp_path):
    d = tmp_path / "src" / "a"
    d.mkdir(parents=True)
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey).save(d / "0_grey.png")
    grey16 = Image.fromarray(grey.astype(np.uint16) * 257)
    assert grey16.mode.startswith("I;16")
    grey16.save(d / "1_grey16.png")
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque
    rgba[0, 1] = (200, 0, 0, 0)  # fully transparent -> white
    rgba[1, 0] = (0, 0, 0, 128)  # half transparent black -> mid grey
    Image.fromarray(rgba).save(d / "2_rgba.png")
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8)).convert("P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.save(d / "3_palette.png")
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(d / "4_cmyk.jpg", quality=100)
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(d / "5_bits.png")
    pack(tmp_path / "src", tmp_path / "out", format="raw", progress=False)
    ds = ShardDataset(tmp_path / "out")
    assert len(ds) == 6
    assert np.array_equal(ds.image(0), np.repeat(grey[..., None], 3, 2))
    assert np.array_equal(ds.image(1), np.repeat(grey[..., None], 3, 2))
    px = ds.image(2)
    assert px[0, 0].tolist() == [10, 20, 30]
    assert px[0, 1].tolist() == [255, 255, 255]
    assert px[1, 0].tolist() == [127, 127, 127]
    assert ds.image(3).tolist() == [[[255, 0, 0], [0, 0, 255]], [[0, 0, 255], [255, 0, 0]]]
    cmyk = ds.image(4).astype(int)
    assert cmyk.shape == (2, 3, 3) and (cmyk[..., 0] > 240).all() and (cmyk[..., 1:] < 15).all()
    assert ds.image(5).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_exif_orientation_is_honoured(tmp_path):
    # Stored 20 rows x 40 cols: left half red, right half blue. Orientation 6 means "rotate
    # 90 degrees clockwise to display": the left column becomes the top row.
    px = np.zeros((20, 40, 3), np.uint8)
    px[:, :20] = (255, 0, 0)
    px[:, 20:] = (0, 0, 255)
    d = tmp_path / "src" / "a"
    d.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(px).save(d / "rot.jpg", quality=95, exif=exif)
    pack(tmp_path / "src", tmp_path / "out", format="raw", progress=False)
    pack(tmp_path / "src", tmp_path / "small", format="raw", max_side=20, progress=False)
    img = ShardDataset(tmp_path / "out").image(0).astype(int)
    assert img.shape == (40, 20, 3)
    assert (img[:18, :, 0] > 200).all() and (img[:18, :, 2] < 60).all()
    assert (img[22:, :, 2] > 200).all() and (img[22:, :, 0] < 60).all()
    assert ShardDataset(tmp_path / "small").sizes.tolist() == [[20, 10]]


def test_statistics_equal_numpy(tiny_packed_raw):
    ds = ShardDataset(tiny_packed_raw)
    pixels = np.concatenate([ds.image(i).reshape(-1, 3) for i in range(len(ds))]) / 255.0
    assert ds.manifest["stats"]["pixels"] == len(pixels)  # small images: every pixel counted
    np.testing.assert_allclose(ds.stats["mean"], pixels.mean(0), rtol=1e-10)
    np.testing.assert_allclose(ds.stats["std"], pixels.std(0), rtol=1e-8)
    val, vec = np.linalg.eigh(np.cov(pixels.T, bias=True))
    np.testing.assert_allclose(ds.stats["eigval"], val[::-1], rtol=1e-8)
    got = ds.stats["eigvec"]
    for k in range(3):  # same vectors up to sign
        assert abs(abs(got[:, k] @ vec[:, 2 - k]) - 1) < 1e-8
    np.testing.assert_allclose(got.T @ got, np.eye(3), atol=1e-10)


def test_statistics_of_large_images_are_sampled_deterministically(tmp_path):
    src = _folder(tmp_path / "src", {"a/0": _noise(100, 90, 0), "a/1": _noise(70, 80, 1)})
    pack(src, tmp_path / "o1", format="raw", progress=False)
    pack(src, tmp_path / "o2", format="raw", workers=2, progress=False)
    s1, s2 = (ShardDataset(tmp_path / o).manifest["stats"] for o in ("o1", "o2"))
    assert s1 == s2 and s1["pixels"] == 2 * 4096
    assert np.allclose(s1["mean"], 0.5, atol=0.02)  # uniform noise: the sample is unbiased


def test_existing_out_needs_overwrite(tiny_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["pack", str(tiny_folder), str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["pack", str(tiny_folder), str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    rc = main(["pack", str(tiny_folder), str(out), "--overwrite", "--format", "raw",
               "--no-progress"])  # fmt: skip
    assert rc == 0 and ShardDataset(out).encoding == "raw"
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("do not delete")
    with pytest.raises(UserError, match="not a packed dataset"):
        pack(tiny_folder, other, overwrite=True, progress=False)
    assert (other / "thesis.txt").exists()


def test_bad_options_exit_2(tiny_folder, tmp_path, capsys):
    assert main(["pack", str(tiny_folder), str(tmp_path / "o"), "--quality", "0"]) == 2
    assert "quality" in capsys.readouterr().err
    assert main(["pack", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["pack", str(tiny_folder)]) == 2


def test_interrupt_inside_pack_leaves_nothing(tiny_folder, tmp_path, monkeypatch):
    from augpipe.format import writer

    calls = []
    real_add = writer.ShardWriter.add

    def add(self, index, value):
        calls.append(index)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_add(self, index, value)

    monkeypatch.setattr(writer.ShardWriter, "add", add)
    with pytest.raises(KeyboardInterrupt):
        pack(tiny_folder, tmp_path / "out", workers=2, progress=False)
    assert sorted(os.listdir(tmp_path)) == []


def _start_pack(src: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "augpipe", "pack", str(src), str(out), "--no-progress",
           "--format", "raw", "--shard-size", "0.5"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_mid_way(proc: subprocess.Popen, parent: Path, sig: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until shards are being written
        building = [p.name for p in parent.glob(".out.tmp-*/shard-*.lmdb.build")]
        if any(name != "shard-00000.lmdb.build" for name in building):
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_pack_leaves_nothing_that_opens_and_rerun_works(tmp_path, sig):
    imgs = {f"c{i % 2}/{i:03d}": _noise(64, 64, i) for i in range(300)}  # 12 kB each raw
    src = _folder(tmp_path / "src", imgs, ext=".bmp")
    out = tmp_path / "out"
    proc = _start_pack(src, out)
    _kill_mid_way(proc, tmp_path, sig)
    assert proc.returncode != 0
    assert not out.exists()
    with pytest.raises(DatasetError):
        ShardDataset(out)
    for tmp in tmp_path.glob(".out.tmp-*"):  # SIGKILL leaves the temp dir: not a dataset
        assert sig == signal.SIGKILL
        with pytest.raises(DatasetError, match="manifest"):
            ShardDataset(tmp)
    report = pack(src, out, format="raw", progress=False)  # the re-run cleans up and works
    assert report.packed == 300 and len(ShardDataset(out)) == 300
    assert list(tmp_path.glob(".out.tmp-*")) == []


def _read_all(path: str) -> list[tuple[bytes, bytes]]:
    import lmdb

    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


def test_writer_grows_the_map_and_stays_deterministic(tmp_path, monkeypatch):
    from augpipe.format import record, writer

    big = [bytes([i]) * (9 << 20) for i in range(3)]  # 27 MiB into a 16 MiB starting map
    paths = []
    for run, estimate in (("a", None), ("b", lambda n: 64)):  # b: a bad estimate -> MapFullError
        if estimate:
            monkeypatch.setattr(writer, "_estimate", estimate)
        w = writer.ShardWriter(str(tmp_path / f"{run}.lmdb"), budget_bytes=1000, first=0)
        for i, value in enumerate(big):
            w.add(i, value)
        w.close()
        paths.append(tmp_path / f"{run}.lmdb")
        assert not (tmp_path / f"{run}.lmdb.build").exists()
    items = _read_all(str(paths[0]))
    assert [k for k, _ in items] == [record.key(i) for i in range(3)]
    assert [v for _, v in items] == big
    assert _read_all(str(paths[1])) == items
    monkeypatch.undo()
    for run in ("c", "d"):  # same records, same commits and growth: same bytes
        w = writer.ShardWriter(str(tmp_path / f"{run}.lmdb"), budget_bytes=1000, first=0)
        for i, value in enumerate(big):
            w.add(i, value)
        w.close()
    assert (tmp_path / "c.lmdb").read_bytes() == (tmp_path / "d.lmdb").read_bytes()


def test_records_lie_in_key_order_in_the_file(tmp_path):
    imgs = {f"a/{i:02d}": np.full((30, 30, 3), i, np.uint8) for i in range(10)}
    src = _folder(tmp_path / "src", imgs)
    pack(src, tmp_path / "out", format="raw", progress=False)
    data = (tmp_path / "out" / "shard-00000.lmdb").read_bytes()
    offsets = [data.find(bytes([i]) * 2700) for i in range(10)]
    assert all(o > 0 for o in offsets) and offsets == sorted(offsets)


def test_keep_jpeg_stores_source_bytes_when_nothing_changes(tmp_path):
    d = tmp_path / "src" / "a"
    d.mkdir(parents=True)
    px = _smooth(30, 40, 0)
    Image.fromarray(px).save(d / "0_plain.jpg", quality=80)
    exif = Image.Exif()
    exif[0x010F] = "camera maker"  # EXIF without orientation: stripped, pixels untouched
    Image.fromarray(px).save(d / "1_exif.jpg", quality=80, exif=exif, comment=b"hello")
    exif[0x0112] = 3  # needs rotating: re-encoded
    Image.fromarray(px).save(d / "2_rotated.jpg", quality=80, exif=exif)
    Image.fromarray(px).save(d / "3_progressive.jpg", quality=80, progressive=True)
    Image.fromarray(px).save(d / "4_png.png")
    # restart_rows=False: byte for byte (by default kept JPEGs are transcoded losslessly to
    # carry restart markers: tests/test_restart_transcode.py)
    pack(tmp_path / "src", tmp_path / "keep", keep_jpeg=True, restart_rows=False, progress=False)
    pack(tmp_path / "src", tmp_path / "re", restart_rows=False, progress=False)
    keep, re = ShardDataset(tmp_path / "keep"), ShardDataset(tmp_path / "re")
    plain = (d / "0_plain.jpg").read_bytes()
    assert bytes(keep.raw(0)) == plain
    assert bytes(keep.raw(1)) == plain  # same pixels, metadata segments removed
    for i in (2, 3, 4):
        assert bytes(keep.raw(i)) == bytes(re.raw(i))
    assert bytes(re.raw(0)) != plain
    assert keep.manifest["options"]["keep_jpeg"] is True
    for i in range(5):
        assert keep.image(i).shape == (30, 40, 3)


def test_list_mode_argument_errors(tmp_path, capsys):
    lst = tmp_path / "l.txt"
    lst.write_text("a.png 0\n")
    assert main(["pack", "--list", str(lst), "a", "b", "c"]) == 2
    assert "[ROOT] OUT" in capsys.readouterr().err
    assert main(["pack", "--list", str(lst), "--root", "r", "a", "b"]) == 2
    assert main(["pack", "--list", str(tmp_path / "missing.txt"), str(tmp_path / "o")]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_downscale_is_antialiased(tmp_path):
    checker = ((np.indices((64, 96)).sum(0) % 2) * 255).astype(np.uint8)
    src = _folder(tmp_path / "src", {"a/c": np.repeat(checker[..., None], 3, 2)})
    pack(src, tmp_path / "out", format="raw", max_side=30, progress=False)
    small = ShardDataset(tmp_path / "out").image(0).astype(float)
    assert small.shape == (20, 30, 3)
    assert abs(small.mean() - 127.5) < 3 and small.std() < 12  # grey, not moire
