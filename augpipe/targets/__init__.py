"""Detection, segmentation and keypoint targets: the per-record binary block, the forward map
that carries boxes, polygons, points and masks through a sample's record, and batching.

Coordinates everywhere: pixel i covers [i, i + 1) (edge coordinates, as pycocotools); boxes are
``xyxy`` in absolute pixels. See docs/targets.md.
"""
