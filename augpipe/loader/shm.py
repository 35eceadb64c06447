"""A ring of batch slots in one shared-memory file.

The main process creates a file in /dev/shm, reserves its pages (``posix_fallocate``, so a
too-small /dev/shm — Docker's default is 64 MB — fails here with a clear message instead of a
SIGBUS in a worker) and maps it.  Workers map the same file by path; once all have mapped it
the main process unlinks the name, so nothing is left in /dev/shm even if the process is
killed; the memory itself is freed by the kernel when the last mapping goes away.

Slot layout: ``batch_size`` images of ``image_shape`` uint8, then ``batch_size`` int64 dataset
indices (written by the main process before it hands the slot to a worker), then ``extra_bytes`` for
a target-carrying dataset's boxes and masks (``augpipe.targets.batch``), then ``mix_bytes`` for
what the worker's host Mixup drew (its λ per sample, ``augpipe.loader.stages``).
"""

from __future__ import annotations

import math
import mmap
import os
import secrets
import tempfile
from dataclasses import dataclass

import numpy as np

from augpipe.errors import UserError

_ALIGN = 4096


def _round_up(n: int, to: int = _ALIGN) -> int:
    return -(-n // to) * to


def shm_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


@dataclass(frozen=True)
class SlotLayout:
    n_slots: int
    batch_size: int
    image_shape: tuple[int, ...]
    extra_bytes: int = 0  # per slot: the targets area (datasets with targets)
    mix_bytes: int = 0  # per slot: the host Mixup's λ, float32 (augpipe.loader.stages)

    @property
    def image_bytes(self) -> int:
        return self.batch_size * math.prod(self.image_shape)

    @property
    def slot_bytes(self) -> int:
        return (_round_up(self.image_bytes) + _round_up(self.batch_size * 8)
                + _round_up(self.extra_bytes) + _round_up(self.mix_bytes))  # fmt: skip

    @property
    def total_bytes(self) -> int:
        return self.n_slots * self.slot_bytes


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(directory: str) -> list[str]:
    """Delete ``augpipe-<pid>-*`` ring files whose creating process is gone.

    The name exists only between creating the ring and the workers attaching to it (then it
    is unlinked), so a file is left behind only if its process was killed (SIGKILL, OOM) in
    that window; the next Loader cleans it up. Returns the paths removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "augpipe" or not parts[1].isdigit():
            continue
        if _alive(int(parts[1])):
            continue
        path = os.path.join(directory, name)
        try:
            if os.stat(path).st_uid == os.getuid():
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
    return removed


class SlotRing:
    """Shared slots: ``images(slot)`` (batch_size, *image_shape) uint8, ``indices(slot)``."""

    def __init__(self, layout: SlotLayout, path: str, buf: mmap.mmap | bytearray, owner: bool):
        self.layout = layout
        self.path = path
        self.owner = owner
        self._buf = buf
        self._images = []
        self._indices = []
        self._extra = []
        self._mix = []
        for s in range(layout.n_slots):
            base = s * layout.slot_bytes
            img = np.frombuffer(buf, np.uint8, layout.image_bytes, base)
            self._images.append(img.reshape(layout.batch_size, *layout.image_shape))
            off = base + _round_up(layout.image_bytes)
            self._indices.append(np.frombuffer(buf, np.int64, layout.batch_size, off))
            off += _round_up(layout.batch_size * 8)
            self._extra.append(np.frombuffer(buf, np.uint8, layout.extra_bytes, off))
            off += _round_up(layout.extra_bytes)
            self._mix.append(np.frombuffer(buf, np.float32, layout.mix_bytes // 4, off))

    @classmethod
    def create(cls, layout: SlotLayout) -> SlotRing:
        remove_stale(shm_dir())
        path = os.path.join(shm_dir(), f"augpipe-{os.getpid()}-{secrets.token_hex(6)}")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, layout.total_bytes)
            except OSError as e:
                raise UserError(
                    f"shared memory: could not reserve {layout.total_bytes / 2**20:.0f} MiB in "
                    f"{shm_dir()} ({e.strerror}); free space there (Docker: --shm-size=2g), or "
                    "lower Loader(prefetch=..., batch_size=...)"
                ) from None
            buf = mmap.mmap(fd, layout.total_bytes)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return cls(layout, path, buf, owner=True)

    @classmethod
    def attach(cls, layout: SlotLayout, path: str) -> SlotRing:
        fd = os.open(path, os.O_RDWR)
        try:
            buf = mmap.mmap(fd, layout.total_bytes)
        finally:
            os.close(fd)
        return cls(layout, path, buf, owner=False)

    @classmethod
    def in_process(cls, layout: SlotLayout) -> SlotRing:
        """Plain memory for ``workers=0``: same views, nothing shared."""
        return cls(layout, "", bytearray(layout.total_bytes), owner=False)

    def images(self, slot: int) -> np.ndarray:
        return self._images[slot]

    def indices(self, slot: int) -> np.ndarray:
        return self._indices[slot]

    def extra(self, slot: int) -> np.ndarray:
        return self._extra[slot]

    def mix(self, slot: int) -> np.ndarray:
        """The slot's float32 area for what the host Mixup drew (empty without one)."""
        return self._mix[slot]

    def unlink(self) -> None:
        """Remove the name from /dev/shm (idempotent); mappings stay valid."""
        if self.owner and self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.owner = False
