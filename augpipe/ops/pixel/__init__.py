"""Post-resample stages of the fused pass: per-sample programs run on the output tile.

After the sampling map and the colour affine have written a sample's tile (still in cache), the
kernel runs the sample's *program*: a short list of steps (``program.py``: lookup tables,
histogram ops, enhance blends, small filters), then the optional canvas clip (policy rotations
and shears fill what falls outside the crop) and the optional erase box. The steps live in
``tile.py``; the ops in this package only draw their parameters.
"""
