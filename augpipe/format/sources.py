"""Where the images come from: an ImageFolder tree or a Caffe-style list file.

ImageFolder: each non-hidden sub-directory of SRC is a class; classes are indexed in sorted
name order; files are found recursively (links followed) and taken in sorted path order.
Files without an image extension are ignored; files with one are kept even when they turn out
to be broken, so that the packer can report them.

List file (Caffe ``convert_imageset``): one ``relative/path label`` per line, the label a
non-negative integer after the last run of whitespace (paths may contain spaces); blank lines
and lines starting with ``#`` are skipped. Paths are relative to ``root``. Class names are
"0" .. str(max label).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from augpipe.errors import UserError
from augpipe.format.imageio import has_image_extension


@dataclass(frozen=True)
class Source:
    items: list[tuple[str, int]]  # (absolute path, label), in packing order
    classes: list[str]
    root: str  # paths in reports are shown relative to this

    def relative(self, path: str) -> str:
        try:
            return os.path.relpath(path, self.root)
        except ValueError:
            return path


def image_folder(src) -> Source:
    root = Path(src)
    if not root.is_dir():
        raise UserError(
            f"SRC: expected an image folder (one sub-folder per class), got {str(src)!r} which "
            "is not a directory; pass a directory or use --list FILE --root DIR"
        )
    classes = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
    if not classes:
        raise UserError(
            f"SRC: expected one sub-folder per class in {str(src)!r}, found none; "
            "put each class's images in its own sub-folder"
        )
    items: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in filenames:
                if not f.startswith(".") and has_image_extension(f):
                    found.append(os.path.join(dirpath, f))
        items.extend((p, label) for p in sorted(found))
    if not items:
        raise UserError(
            f"SRC: no files with an image extension under {str(src)!r} "
            f"(classes found: {', '.join(classes[:5])}{'...' if len(classes) > 5 else ''})"
        )
    return Source(items=items, classes=classes, root=str(root))


def list_file(path, root) -> Source:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--list: expected a list file, got {str(path)!r} which does not exist")
    root = Path(root) if root else path.parent
    if not root.is_dir():
        raise UserError(f"--root: expected a directory, got {str(root)!r}")
    items: list[tuple[str, int]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise UserError(
                    f"--list {str(path)!r} line {lineno}: expected 'relative/path label' with a "
                    f"non-negative integer label, got {line!r}"
                )
            items.append((str(root / parts[0]), int(parts[1])))
    if not items:
        raise UserError(f"--list {str(path)!r}: no 'path label' lines found")
    n_classes = max(label for _, label in items) + 1
    return Source(items=items, classes=[str(k) for k in range(n_classes)], root=str(root))
