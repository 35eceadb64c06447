"""`augpipe preview OUT --out grid.png [--n 16] [--seed 0] [--pipeline NAME|FILE.json|SPEC]`.

A PNG grid: each tile pairs an original record (left, letterboxed) with what the pipeline makes
of it (right; test-time pipelines show every crop), labelled with its class name and index.
The augmented images come from ``run_batch``, the loader's own path (crop-aware decode included).
"""

from __future__ import annotations

import numpy as np

PIPELINES = ("train", "eval", "full", "scalejitter", "tencrop", "multiscale")


def pipeline(name: str, size: int):
    """The named pipelines ``augpipe preview`` (and anyone else) can ask for."""
    from augpipe import transforms as T

    if name == "train":
        return T.Compose(
            [
                T.RandomResizedCrop(size),
                T.HorizontalFlip(),
                T.ColorJitter(0.4, 0.4, 0.4),
                T.PCALighting(0.1),
            ]
        )
    if name == "eval":
        return T.Compose([T.CenterCrop(size, short_side=round(size * 8 / 7))])
    if name == "full":
        return T.Compose(
            [
                T.RandomResizedCrop(size),
                T.HorizontalFlip(),
                T.Affine(rotate=15, shear=10, translate=0.05, stretch=(0.85, 1.15)),
                T.LensDistortion((-0.25, 0.25)),
                T.ColorJitter(0.4, 0.4, 0.4),
                T.PCALighting(0.1),
            ]
        )
    if name == "scalejitter":
        return T.Compose(
            [T.ScaleJitter(size, (round(size * 8 / 7), round(size * 15 / 7))), T.HorizontalFlip()]
        )
    if name == "tencrop":
        return T.Compose([T.TenCrop(size, short_side=round(size * 8 / 7))])
    if name == "multiscale":
        return T.Compose([T.MultiScaleTenCrop(size, scales=(size, round(size * 8 / 7)))])
    from augpipe.spec import load_pipeline  # a JSON file or a string spec: rand-m9-mstd0.5

    return load_pipeline(name, size=size)


def register(sub) -> None:
    p = sub.add_parser(
        "preview",
        help="write a PNG grid of originals beside their augmented versions",
        description="Write a PNG grid of dataset images beside their augmented versions, "
        "labelled with class names, to check a pipeline by eye.",
    )
    p.add_argument("path", metavar="OUT", help="packed dataset directory")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--epoch", type=int, default=0, help="epoch (default 0)")
    p.add_argument(
        "--pipeline",
        default="train",
        help=f"{' | '.join(PIPELINES)} (default train), a pipeline .json file, or a policy "
        "string such as rand-m9-mstd0.5-inc1 (captions name the ops drawn)",
    )
    p.add_argument("--size", type=int, default=160, help="output size in pixels (default 160)")
    p.set_defaults(func=run)


def _fit(img: np.ndarray, size: int, width: int | None = None) -> np.ndarray:
    import cv2

    width = size if width is None else width
    h, w = img.shape[:2]
    s = min(size / h, width / w)
    small = cv2.resize(
        img,
        (max(1, round(w * s)), max(1, round(h * s))),
        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
    )
    tile = np.full((size, width, 3), 40, np.uint8)
    y, x = (size - small.shape[0]) // 2, (width - small.shape[1]) // 2
    tile[y : y + small.shape[0], x : x + small.shape[1]] = small
    return tile


def caption_band(pipe, index: int, seed: int, epoch: int, width: int) -> np.ndarray:
    """Lines naming the policy/pixel ops and magnitudes the sample drew (none: empty)."""
    import cv2

    from augpipe.ops.policies.describe import sample_caption

    text = sample_caption(pipe, index, seed, epoch)
    per_line = max(8, width // 6)
    lines = [text[k : k + per_line] for k in range(0, len(text), per_line)][:3]
    rows = 3 if any(op.kind in ("pixel", "policy", "erase") for op in pipe.ops) else 0
    band = np.full((13 * rows, width, 3), 255, np.uint8)  # same height for every tile
    for k, line in enumerate(lines):
        cv2.putText(band, line, (3, 13 * k + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (40, 40, 160),
                    1, cv2.LINE_AA)  # fmt: skip
    return band


def render_grid(dataset, pipe, indices, seed: int, epoch: int, size: int) -> np.ndarray:
    """The grid as an HWC uint8 RGB array."""
    import cv2

    targets = None
    if getattr(dataset, "has_targets", False):  # boxes, masks, keypoints drawn on (targets/)
        from augpipe.targets.draw import draw_grid_tiles

        out, targets = draw_grid_tiles(dataset, pipe, indices, seed, epoch)
    else:
        out = np.empty((len(indices), *pipe.output_shape), np.uint8)
        pipe.run_batch(dataset, np.asarray(indices, np.int64), seed, epoch, out)
    H, W = pipe.output_shape[-3:-1]  # a pipeline file's own size, not necessarily --size
    crops = out.reshape(len(indices), -1, H, W, 3)
    k = crops.shape[1]
    label_h, gap = 18, 4
    tiles = []
    for j, i in enumerate(indices):
        row = [_fit(dataset.image(int(i)), H, W)] + list(crops[j])
        strip = np.concatenate([np.pad(t, ((0, 0), (0, gap), (0, 0))) for t in row], axis=1)
        label = np.full((label_h, strip.shape[1], 3), 255, np.uint8)
        name = (dataset.classes[int(dataset.labels[int(i)])] if targets is None
                else f"{int(targets[j])} targets")  # fmt: skip
        cv2.putText(
            label,
            f"{name}  #{int(i)}",
            (3, label_h - 5),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
        label = np.concatenate([label, caption_band(pipe, int(i), seed, epoch, strip.shape[1])])
        tiles.append(
            np.pad(
                np.concatenate([label, strip]), ((0, gap), (0, gap), (0, 0)), constant_values=255
            )
        )
    per_row = max(1, min(len(tiles), 4 if k == 1 else 1))
    rows = []
    for r in range(0, len(tiles), per_row):
        chunk = tiles[r : r + per_row]
        chunk += [np.full_like(tiles[0], 255)] * (per_row - len(chunk))
        rows.append(np.concatenate(chunk, axis=1))
    return np.concatenate(rows, axis=0)


def run(args) -> int:
    import cv2

    from augpipe import rng
    from augpipe.errors import bad_param
    from augpipe.format.dataset import ShardDataset

    if args.n < 1:
        raise bad_param("--n", "a positive number of samples", args.n)
    if args.size < 8:
        raise bad_param("--size", "at least 8 pixels", args.size)
    if not str(args.out).lower().endswith(".png"):
        raise bad_param("--out", "a .png file name", args.out)
    ds = ShardDataset(args.path)
    pipe = pipeline(args.pipeline, args.size).bind(ds)
    n = min(args.n, len(ds))
    indices = np.sort(rng.permutation(len(ds), args.seed, 0)[:n])
    grid = render_grid(ds, pipe, indices, args.seed, args.epoch, args.size)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise bad_param("--out", "a writable PNG path", str(args.out))
    print(f"wrote {args.out}: {n} samples, pipeline {args.pipeline!r}, seed {args.seed}")
    return 0
