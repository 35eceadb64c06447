"""Shared session-scoped fixtures: a tiny synthetic ImageFolder and it packed (JPEG and raw)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """ImageFolder of 3 classes x 8 JPEGs, mixed sizes 24..48 px (from ``make_image_folder``)."""
    from augpipe.synth import make_image_folder

    root = tmp_path_factory.mktemp("tiny") / "images"
    return make_image_folder(root, n_classes=3, per_class=8, min_side=24, max_side=48, seed=0)


@pytest.fixture(scope="session")
def tiny_packed(tiny_folder, tmp_path_factory):
    """``tiny_folder`` packed as JPEG (quality 90), one shard: the dataset directory's path."""
    from augpipe.format.pack import pack

    out = tmp_path_factory.mktemp("packed") / "tiny.jpeg"
    pack(tiny_folder, out, format="jpeg", quality=90, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_packed_raw(tiny_folder, tmp_path_factory):
    """``tiny_folder`` packed as raw HWC uint8 pixels: the dataset directory's path."""
    from augpipe.format.pack import pack

    out = tmp_path_factory.mktemp("packed") / "tiny.raw"
    pack(tiny_folder, out, format="raw", progress=False)
    return out


@pytest.fixture(scope="session")
def remote_packed(tmp_path_factory):
    """A small JPEG dataset over many tiny shards, for the remote-dataset tests."""
    from remote_helpers import pack_small

    return pack_small(tmp_path_factory.mktemp("remote"))
