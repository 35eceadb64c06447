"""Cut an ImageNet-like JPEG corpus out of a few large real photos, for benchmarks only.

    python tools/make_photo_corpus.py /usr/share/backgrounds/mate/nature data/corpus/photos \
        --n 5000 --classes 10 --seed 0 --workers 2
    python tools/make_photo_corpus.py /usr/share/backgrounds/mate/nature \
        data/corpus/detail/photos --preset detail --n 5000 --classes 10 --seed 0 --workers 2

Each output image is a random crop of one source photo, downscaled (INTER_AREA) to an
ImageNet-like size: short side mostly 300-500 (mean size about 414x376), aspect ratio 3:4..4:3
and occasionally wider, saved as JPEG quality 90 (about 23 KiB). ``--preset detail`` makes the
second benchmark corpus: larger images (short side mostly 330-560, mean about 468x411) saved at
quality 95, which keeps more of the photos' fine detail (about 40 KiB per image), so that no
speed figure holds for one kind of image only. Photos are dealt to the K classes round-robin,
so a class's images come from its own photos (learnable, like real classes). Every parameter of
image i is drawn from a generator seeded with (seed, i): the corpus is byte-identical whatever
--workers is. The corpus is never committed (benchmarks only; tests make their own data).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_cache: dict[str, np.ndarray] = {}  # per worker process: decoded source photos


def find_photos(src: Path) -> list[Path]:
    photos = sorted(p for p in src.rglob("*") if p.suffix.lower() in PHOTO_EXTS and p.is_file())
    if not photos:
        sys.exit(f"make_photo_corpus: no photos ({', '.join(PHOTO_EXTS)}) found under {src}")
    return photos


def _photo(path: str) -> np.ndarray:
    if path not in _cache:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise RuntimeError(f"cannot decode source photo {path}")
        _cache[path] = img
    return _cache[path]


# per preset: short side (mean, sd, lo, hi), source region / output size (lo, hi), quality
PRESETS = {
    "standard": {"short": (355, 45, 300, 500), "zoom": (1.0, 4.0), "quality": 90},
    "detail": {"short": (400, 45, 330, 560), "zoom": (1.0, 2.5), "quality": 95},
}


def draw_size(rng: np.random.Generator, short_dist=PRESETS["standard"]["short"]) -> tuple[int, int]:
    """(height, width) of one output image, ImageNet-like."""
    mean, sd, lo, hi = short_dist
    short = int(np.clip(rng.normal(mean, sd), lo, hi))
    if rng.random() < 0.9:
        ratio = float(np.exp(rng.uniform(np.log(1.0), np.log(4 / 3))))  # 1:1 .. 4:3
    else:
        ratio = float(rng.uniform(4 / 3, 2.0))  # occasionally wider (panoramas)
    long = int(round(short * ratio))
    if rng.random() < 0.75:  # most photos are landscape
        return short, long
    return long, short


def make_one(job: tuple[int, int, str, str, int, str]) -> tuple[int, int, int]:
    """Write image ``i``; returns (height, width, bytes)."""
    i, seed, photo, out_path, quality, preset = job
    rng = np.random.default_rng([seed, i])
    src = _photo(photo)
    out_h, out_w = draw_size(rng, PRESETS[preset]["short"])
    sh, sw = src.shape[:2]
    # Region in the source with the output's aspect, zoom[0]..zoom[1] times the output size
    # (clamped to the photo).
    max_scale = min(sh / out_h, sw / out_w)
    zlo, zhi = PRESETS[preset]["zoom"]
    lo = min(zlo, max(1.0, max_scale))
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, min(zhi, max_scale))))))
    scale = min(scale, max_scale)
    rh, rw = max(1, int(out_h * scale)), max(1, int(out_w * scale))
    y0 = int(rng.integers(0, sh - rh + 1))
    x0 = int(rng.integers(0, sw - rw + 1))
    crop = src[y0 : y0 + rh, x0 : x0 + rw]
    interp = cv2.INTER_AREA if rh > out_h else cv2.INTER_LINEAR
    img = cv2.resize(crop, (out_w, out_h), interpolation=interp)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encode failed for image {i}")
    Path(out_path).write_bytes(buf.tobytes())
    return out_h, out_w, len(buf)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="folder of large photos (searched recursively)")
    ap.add_argument("out", type=Path, help="output ImageFolder root (class_XX/NNNNN.jpg)")
    ap.add_argument("--n", type=int, default=5000, help="number of images")
    ap.add_argument("--classes", type=int, default=10, help="number of class folders")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="standard",
                    help="image sizes, detail and quality (see above)")  # fmt: skip
    ap.add_argument("--quality", type=int, default=None,
                    help="JPEG quality (default: the preset's, 90 or 95)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if args.quality is None:
        args.quality = PRESETS[args.preset]["quality"]
    if args.n < 1 or args.classes < 1 or not 1 <= args.quality <= 100:
        ap.error("--n and --classes must be >= 1 and --quality in 1..100")

    photos = find_photos(args.src)
    # Deal photos to classes round-robin; with fewer photos than classes, classes share photos.
    by_class: list[list[str]] = [[] for _ in range(args.classes)]
    for k, p in enumerate(photos):
        by_class[k % args.classes].append(str(p))
    for c in range(args.classes):
        if not by_class[c]:
            by_class[c].append(str(photos[c % len(photos)]))

    jobs = []
    for i in range(args.n):
        c = i % args.classes
        rng = np.random.default_rng([args.seed, i, 1])
        photo = by_class[c][int(rng.integers(len(by_class[c])))]
        folder = args.out / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((i, args.seed, photo, str(folder / f"{i:05d}.jpg"), args.quality,
                     args.preset))  # fmt: skip

    sizes = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        it = pool.map(make_one, jobs, chunksize=16)
        for res in tqdm(it, total=len(jobs), desc="corpus", unit="img"):
            sizes.append(res)
    arr = np.array(sizes, dtype=np.float64)
    print(
        f"wrote {len(jobs)} images in {args.classes} classes to {args.out} from {len(photos)} "
        f"photos: mean {arr[:, 1].mean():.0f}x{arr[:, 0].mean():.0f} (WxH), "
        f"mean {arr[:, 2].mean() / 1024:.1f} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
