"""`augpipe preview --pipeline rand-m9-...` (and a JSON file): captions name the ops drawn."""

from __future__ import annotations

import cv2
import numpy as np

from augpipe import transforms as T
from augpipe.cli.main import main
from augpipe.ops.policies import vocab as V
from augpipe.ops.policies.describe import sample_caption
from augpipe.spec import load_pipeline


def test_caption_names_the_drawn_ops_and_magnitudes():
    pipe = load_pipeline("rand-m9-n3-p1.0", size=32)
    op = pipe.ops[-1]
    for i in range(20):
        kinds, values = op.draw(np.array([i]), 0, 0, 2, (32, 32))
        cap = sample_caption(pipe, i, 0, 0)
        assert len(cap.split()) == 3  # three ops, all applied (p = 1)
        if V.ROTATE in kinds[0]:
            deg = values[0][list(kinds[0]).index(V.ROTATE)]
            assert f"Rotate({deg:.3g})" in cap
    aug = T.Compose([T.CenterCrop(16), T.AugMix(width=2), T.RandomErasing(1.0)])
    cap = sample_caption(aug, 3, 0, 0)
    assert cap.startswith("AugMix[") and " | " in cap and "Erase(" in cap


def test_preview_with_a_policy_string_and_a_json_file(tiny_packed, tmp_path, capsys):
    out = tmp_path / "ra.png"
    args = ["preview", str(tiny_packed), "--out", str(out), "--n", "4", "--size", "32",
            "--pipeline", "rand-m9-mstd0.5-inc1"]  # fmt: skip
    assert main(args) == 0
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[1] >= 4 * 64
    spec = tmp_path / "p.json"
    T.Compose([T.RandomResizedCrop(32), T.TrivialAugmentWide()]).save(spec)
    assert main(["preview", str(tiny_packed), "--out", str(tmp_path / "j.png"), "--n", "2",
                 "--size", "32", "--pipeline", str(spec)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["preview", str(tiny_packed), "--out", str(tmp_path / "x.png"),
                 "--pipeline", "rand-m9-q1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'q'" in err
