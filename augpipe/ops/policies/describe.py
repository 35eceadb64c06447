"""What a sample drew, in words: the ops and magnitudes behind a preview tile's caption.

>>> sample_caption(load_pipeline("rand-m9-mstd0.5-inc1", size=224), index=7, seed=0, epoch=0)
'Rotate(-27.4) Posterize(2)'
"""

from __future__ import annotations

import numpy as np

from augpipe.ops.pixel import program as P
from augpipe.ops.policies import vocab as V


def op_words(op, pos: int, index: int, seed: int, epoch: int, out_hw) -> list[str]:
    """One op's draws for one sample: policies name their ops, pixel ops their steps."""
    idx = np.array([index], np.int64)
    if hasattr(op, "policy") and hasattr(op, "draw"):
        d = op.draw(idx, seed, epoch, pos, out_hw)
        if len(d) == 4:  # AugMix: chains, weights, blend
            kinds, values, ws, m = d
            chains = [" ".join(V.describe(kinds[0, c], values[0, c])) or "-"
                      for c in range(kinds.shape[1])]  # fmt: skip
            return [f"AugMix[{' | '.join(chains)}] m={float(m[0]):.2f}"]
        return V.describe(d[0][0], d[1][0]) or ["-"]
    if hasattr(op, "steps"):
        codes, args = op.steps(idx, seed, epoch, pos)
        return P.describe(codes[0], args[0])
    if hasattr(op, "erase_box"):
        e = op.erase_box(idx, seed, epoch, pos, out_hw)
        if e["emode"][0]:
            y0, x0, h, w = (int(v) for v in e["ebox"][0])
            return [f"Erase({h}x{w})"]
    return []


def sample_caption(pipe, index: int, seed: int, epoch: int) -> str:
    """The policy and pixel ops one sample drew, with magnitudes ('' when none)."""
    out_hw = pipe.output_shape[-3:-1]
    words: list[str] = []
    for pos, op in enumerate(pipe.ops):
        words += op_words(op, pos, int(index), int(seed), int(epoch), out_hw)
    return " ".join(words)
