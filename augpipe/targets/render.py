"""Images and their masks in one pass: each sample's semantic mask and RLE instance masks are
sampled by the image's own kernel call (``augpipe.ops.fused.render_item(..., mask=...)``).

The kernel computes each output pixel's source point once; the image samples it bilinearly
and every mask takes the source pixel that contains it (pixel i covers [i, i + 1): the pixel
floor(x), floor(y) of the point's full-size edge coordinate), or its fill outside the source
(semantic 255, instance 0). The masks enter as one window of the source, decoded once per
sample (``mask_window``: for an affine map only the rows and columns its corners bound).
Boxes, polygons and keypoints then follow the same record (``augpipe.targets.transform``).

>>> ts = run_same_pass(target_pipeline, dataset, [0, 1], 0, 0, images)
"""

from __future__ import annotations

import numpy as np

from augpipe.errors import bad_param
from augpipe.ops.fused import render_item
from augpipe.targets.core import IGNORE
from augpipe.targets.masks import instance_planes, mask_window
from augpipe.targets.transform import check_one_map, transform


def run_same_pass(tp, dataset, indices, seed: int, epoch: int, out, sem_out=None) -> list:
    """``tp`` (a ``TargetPipeline``): images into ``out`` (B, H, W, 3) uint8 and the samples'
    output-frame ``Targets``, their masks sampled in the image's pass (semantic masks into
    ``sem_out`` (B, H, W) uint8 when given). ``tp.same_pass`` None: a sample with a single
    mask takes the separate nearest pass instead (``warp_nearest``, measured faster for one
    plane; two or more share the image's coordinates and gain)."""
    pipe = tp.pipeline
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    shape = (len(indices), *pipe.output_shape)
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != shape:
        raise bad_param("out", f"a C-contiguous uint8 array of shape {shape}",
                        getattr(out, "shape", type(out).__name__))  # fmt: skip
    if not out.flags.c_contiguous:
        raise bad_param("out", "a C-contiguous array", "a strided view", "pass np.empty(...)")
    from augpipe.targets.batch import read_targets

    H, W = tp.out_hw
    view = out.reshape(len(indices), 1, H, W, out.shape[-1])
    ts: list = [None] * len(indices)
    checked = False
    for j, (img, bgr, sc, off, f) in pipe._decoded(dataset, indices, seed, epoch):
        recs = f[9]
        if not checked:
            check_one_map(recs)
            checked = True
        t = read_targets(dataset, int(indices[j]))
        inst = instance_planes(t, tp.instances)
        sem = t.semantic is not None and tp.semantic  # (not warped when not delivered)
        slot = None if sem_out is None else sem_out[j]
        warped, mask = (None, {}), None
        if len(inst) + sem == 1 and tp.same_pass is None:
            warped = None  # a lone mask: its own nearest pass, after the batch's images
        elif len(inst) + sem:
            planes = [(t.semantic, IGNORE)] if sem else []
            planes += [(t.instance_mask(i), 0) for i in inst]
            if len(planes) == 1 and sem and slot is not None:
                mout = slot[None]  # the semantic mask straight into the batch slot
            else:
                mout = np.empty((len(planes), H, W), np.uint8)
            pad, y0, x0 = mask_window(planes, recs[j], (H, W))
            mask = (pad, y0, x0, mout)
            s = int(sem)
            warped = (mout[0] if s else None, {i: mout[s + n] for n, i in enumerate(inst)})
        render_item(img, bgr, f, j, view[j], pipe.fill, sc, off, mask)
        ts[j] = (t, recs[j], slot, warped)
    # boxes, polygons and points after the batch's pixels (kept apart, each loop stays in
    # cache: measured faster than one sample's targets between two kernel calls)
    flip_idx = tp.flip_idx if tp.K else None
    return [
        transform(
            t,
            rec,
            (H, W),
            tp.options,
            flip_idx,
            masks=tp.instances,
            semantic_out=slot,
            warped=warped,
        )
        for t, rec, slot, warped in ts
    ]
