"""Pascal VOC XML as a pack source (``augpipe pack --voc DIR OUT``).

Layout: ``DIR/Annotations/*.xml`` and the images in ``DIR/JPEGImages/`` (the XML's
``filename``). VOC boxes are 1-based inclusive pixel indices: pixel ``xmin`` .. ``xmax`` covers
the edge interval [xmin - 1, xmax), so the stored box is ``(xmin - 1, ymin - 1, xmax, ymax)``.
``difficult`` objects are kept with the ``iscrowd`` flag (ignore regions, as VOC's evaluation
treats them). Class names from ``DIR/classes.txt``, else the sorted names found.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from augpipe.errors import UserError
from augpipe.format.yolo import read_names
from augpipe.targets.source import RawAnnotation, TargetSource


def parse_xml(path: Path) -> dict:
    tree = ET.parse(path).getroot()
    size = tree.find("size")
    objs = []
    for o in tree.iter("object"):
        bb = o.find("bndbox")
        box = [float(bb.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")]
        objs.append({
            "name": o.findtext("name", "").strip(),
            "box": [box[0] - 1, box[1] - 1, box[2], box[3]],
            "difficult": o.findtext("difficult", "0").strip() == "1",
        })  # fmt: skip
    hw = None
    if size is not None and size.findtext("height"):
        hw = (int(size.findtext("height")), int(size.findtext("width")))
    return {"filename": tree.findtext("filename", "").strip(), "size": hw, "objects": objs}


def voc_source(folder) -> TargetSource:
    root = Path(folder)
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise UserError(f"--voc: expected a folder with Annotations/ and JPEGImages/, got "
                        f"{str(root)!r}")  # fmt: skip
    files = sorted(p for p in ann_dir.glob("*.xml") if not p.name.startswith("."))
    if not files:
        raise UserError(f"--voc {str(root)!r}: no .xml files in Annotations/")
    parsed = []
    for f in files:
        try:
            parsed.append((f, parse_xml(f)))
        except (ET.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise UserError(f"--voc: {str(f)!r} is not a VOC annotation ({exc}); fix or remove "
                            "it") from None  # fmt: skip
    names = read_names(root / "classes.txt")
    classes = names or sorted({o["name"] for _, p in parsed for o in p["objects"]})
    index = {n: k for k, n in enumerate(classes)}
    items, anns, problems = [], [], []
    for f, p in parsed:
        image = str(root / "JPEGImages" / (p["filename"] or f.with_suffix(".jpg").name))
        rel = os.path.relpath(image, root)
        keep = []
        for o in p["objects"]:
            if o["name"] not in index:
                problems.append((rel, f"{f.name}: unknown class {o['name']!r}: dropped"))
            else:
                keep.append(o)
        items.append((image, -1))
        anns.append(RawAnnotation(
            size=p["size"], boxes=np.asarray([o["box"] for o in keep]).reshape(-1, 4),
            labels=np.asarray([index[o["name"]] for o in keep]),
            iscrowd=np.asarray([o["difficult"] for o in keep], bool)))  # fmt: skip
    src = TargetSource(items, list(classes), str(root), anns, {"source": "voc"})
    src.problems.extend(problems)
    return src
