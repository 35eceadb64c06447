"""``augpipe preview`` on a dataset with targets draws them."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from augpipe import CenterCrop, Compose, ShardDataset
from augpipe.cli.preview import render_grid
from augpipe.format.pack import pack
from augpipe.targets.draw import colour
from tests.targets_fakes import coco_dataset


def test_preview_draws_boxes_in_class_colours(tmp_path):
    js = coco_dataset(tmp_path / "coco", n=2, size=(64, 64))
    pack(None, tmp_path / "p", coco=js, root=tmp_path / "coco" / "images", progress=False)
    ds = ShardDataset(tmp_path / "p")
    grid = render_grid(ds, Compose([CenterCrop(64)]).bind(ds), [0], 0, 0, 64)
    for label in ds.targets(0).labels:
        assert (grid == np.array(colour(int(label)), np.uint8)).all(axis=2).sum() > 20
    out = tmp_path / "g.png"
    cmd = [sys.executable, "-m", "augpipe", "preview", str(tmp_path / "p"), "--out", str(out)]
    r = subprocess.run(cmd + ["--n", "2", "--size", "64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out)) is not None
