"""What ``augpipe inspect`` says about a dataset's targets, and the per-record block check."""

from __future__ import annotations

import numpy as np

from augpipe.format import record
from augpipe.targets import layout


def summary(manifest: dict) -> dict | None:
    """Per-class box / mask / keypoint counts and the pack-time annotation report, or None."""
    t = manifest.get("targets")
    if not isinstance(t, dict):
        return None
    counts = t.get("counts", {})
    per_class = {}
    for k, name in enumerate(manifest["classes"]):
        per_class[name] = {key: int(v[k]) for key, v in counts.items() if k < len(v)}
    return {
        "source": t.get("source"),
        "keypoints": t.get("keypoints", 0),
        "max_instances": t.get("max_instances", 0),
        "semantic": bool(t.get("semantic")),
        "background_images": t.get("background_images", 0),
        "annotation_problems": t.get("problems", 0),
        "per_class": per_class,
    }


def format_lines(s: dict) -> list[str]:
    lines = [
        f"  targets ({s['source']}): up to {s['max_instances']} instances per image, "
        f"{s['keypoints']} keypoints per instance" + (", semantic masks" if s["semantic"] else ""),
        f"  background images (no annotations): {s['background_images']}; annotation problems "
        f"at pack time: {s['annotation_problems']} (annotations.tsv)",
        "  per class: " + ("pixels" if s["semantic"] else "boxes / masks / visible keypoints"),
    ]
    items = list(s["per_class"].items())
    shown = items if len(items) <= 20 else items[:10] + [("...", None)] + items[-5:]
    for name, c in shown:
        if c is None:
            lines.append("    ...")
        elif s["semantic"]:
            lines.append(f"    {name}: {c.get('pixels', 0)}")
        else:
            lines.append(f"    {name}: {c.get('boxes', 0)} / {c.get('masks', 0)} / "
                         f"{c.get('points', 0)}")  # fmt: skip
    return lines


def check(value, head: record.RecordHeader, has_targets: bool, n_classes: int) -> str | None:
    """The problem with record ``value``'s targets block, or None."""
    block = record.targets_block(value, head)
    if block is None:
        return "the record has no targets block" if has_targets else None
    if not has_targets:
        return "the record has a targets block but the manifest lists no targets"
    try:
        t = layout.decode(block, (head.height, head.width), check_crc=True)
    except ValueError as exc:
        return str(exc)
    if len(t) and (t.labels.min() < 0 or t.labels.max() >= n_classes):
        return "targets have labels outside the class list"
    if not np.all(np.isfinite(t.boxes)):
        return "targets have non-finite boxes"
    return None
