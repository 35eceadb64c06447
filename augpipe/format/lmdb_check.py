"""Check a shard's LMDB structure in Python before liblmdb maps it ("verify, then trust").

liblmdb is memory-mapped C: it follows page numbers and node offsets stored in the file
without bounds checks beyond ``mm_last_pg``, so a damaged or truncated file can make a read
return garbage or raise SIGSEGV/SIGBUS in the reading process. ``check_shard`` reads the file
with plain ``pread`` (bounds-checked, never mapped) and verifies everything a read-only
``get`` or cursor walk of our databases touches:

- both meta pages parse as liblmdb's ``mdb_env_read_header`` requires (magic, version, page
  size, flags), and the meta liblmdb will pick (higher txnid) is the one walked;
- every branch and leaf page reachable from the main DB's root lies inside the file and below
  ``mm_last_pg``, stores its own page number, has sane ``mp_lower``/``mp_upper``, node offsets
  and key sizes inside the page, is reached once (no cycles), and all leaves sit at the
  recorded depth;
- branch keys bound their subtrees, and the leaves hold exactly the 8-byte keys
  ``first .. first + count - 1`` in order;
- every value (inline, or an overflow extent addressed by page number) lies inside the file,
  extents overlap neither each other nor the tree's pages.

Only branch and leaf pages are read (about one page per hundred records of a JPEG shard), so
the check is cheap enough to run before every first read in a process. Payload bytes are not
read here: every record read checks its header and CRC32 (``ShardDataset.raw``). The check is a
statement about the file as it is now; a file changed while mapped is outside it.
"""

from __future__ import annotations

import os
import struct

import numpy as np

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1  # liblmdb 0.9 (py-lmdb's default engine)
HDR = 16  # PAGEHDRSZ: pgno u64, pad u16, flags u16, lower u16, upper u16
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA = 0x01
P_INVALID = (1 << 64) - 1
MAX_DEPTH = 32  # liblmdb's CURSOR_STACK
_PAGE = struct.Struct("<QHHHH")
_META = struct.Struct("<IIQQ")  # magic, version, address, mapsize
_DB = struct.Struct("<IHHQQQQQ")  # pad (psize for FREE_DBI), flags, depth, counts, root
_TAIL = struct.Struct("<QQ")  # last_pg, txnid
# persistent env flags stored in the free DB's md_flags: INTEGERKEY (its own) and NOSUBDIR
_FREE_FLAGS_OK = 0x08 | 0x4000
_ARANGE8 = np.arange(8)


class ShardDamage(Exception):
    """Raised inside the check with a one-line reason; ``check_shard`` turns it into text."""


def _meta(buf: bytes, pgno: int) -> dict:
    if len(buf) < HDR + _META.size + 2 * _DB.size + _TAIL.size:
        raise ShardDamage(f"meta page {pgno} is truncated")
    page_no, _pad, flags, _lo, _up = _PAGE.unpack_from(buf, 0)
    magic, version, _addr, mapsize = _META.unpack_from(buf, HDR)
    free = _DB.unpack_from(buf, HDR + _META.size)
    main = _DB.unpack_from(buf, HDR + _META.size + _DB.size)
    last_pg, txnid = _TAIL.unpack_from(buf, HDR + _META.size + 2 * _DB.size)
    if not flags & P_META or page_no != pgno:
        raise ShardDamage(f"meta page {pgno} is not a meta page (flags 0x{flags:x})")
    if magic != MAGIC:
        raise ShardDamage(f"meta page {pgno} has bad magic 0x{magic:x}")
    if version != DATA_VERSION:
        raise ShardDamage(f"meta page {pgno} has data version {version}, expected 1")
    if free[1] & ~_FREE_FLAGS_OK:
        raise ShardDamage(f"meta page {pgno} has unexpected environment flags 0x{free[1]:x}")
    return {"psize": free[0], "mapsize": mapsize, "main": main, "last_pg": last_pg,
            "txnid": txnid}  # fmt: skip


class _Walk:
    def __init__(self, fd: int, size: int, psize: int, last_pg: int):
        self.fd, self.size, self.psize = fd, size, psize
        self.n_pages = min(size // psize, last_pg + 1)
        self.seen: set[int] = set()
        self.keys: list[np.ndarray] = []
        self.extents: list[np.ndarray] = []  # (start page, pages) per overflow value

    def page(self, pgno: int, depth: int) -> np.ndarray:
        if not 2 <= pgno < self.n_pages:
            raise ShardDamage(f"page {pgno} (depth {depth}) is outside the file's "
                              f"{self.n_pages} pages")  # fmt: skip
        if pgno in self.seen:
            raise ShardDamage(f"page {pgno} is reached twice (a cycle in the B-tree)")
        self.seen.add(pgno)
        buf = os.pread(self.fd, self.psize, pgno * self.psize)
        if len(buf) != self.psize:
            raise ShardDamage(f"page {pgno} is truncated")
        return np.frombuffer(buf, np.uint8)

    def nodes(self, pg: np.ndarray, pgno: int):
        """(offsets, lo, hi, flags, ksize) of the page's nodes, bounds checked."""
        _no, _pad, _fl, lower, upper = _PAGE.unpack_from(pg, 0)
        if lower < HDR + 2 or lower % 2 or upper > self.psize or lower > upper:
            raise ShardDamage(f"page {pgno} has bad bounds (lower {lower}, upper {upper})")
        ptr = pg[HDR:lower].view("<u2").astype(np.int64)
        if np.any(ptr < upper) or np.any(ptr % 2) or np.any(ptr + 8 > self.psize):
            raise ShardDamage(f"page {pgno} has a node offset outside its node area")
        head = pg[ptr[:, None] + _ARANGE8].view("<u2").astype(np.int64)
        lo, hi, flags, ksize = head[:, 0], head[:, 1], head[:, 2], head[:, 3]
        if np.any(ptr + 8 + ksize > self.psize):
            raise ShardDamage(f"page {pgno} has a key running past the page end")
        return ptr, lo, hi, flags, ksize

    def keys_at(self, pg: np.ndarray, ptr: np.ndarray) -> np.ndarray:
        return pg[(ptr + 8)[:, None] + _ARANGE8].view(">u8").reshape(-1).astype(np.int64)

    def walk(self, pgno: int, depth: int, want_depth: int, lo_key: int, hi_key: int) -> None:
        pg = self.page(pgno, depth)
        stored, _pad, flags, _l, _u = _PAGE.unpack_from(pg, 0)
        if stored != pgno:
            raise ShardDamage(f"page {pgno} stores page number {stored}")
        ptr, lo, hi, nflags, ksize = self.nodes(pg, pgno)
        if flags == P_BRANCH and depth < want_depth:
            if np.any(ksize[1:] != 8):
                raise ShardDamage(f"branch page {pgno} has a key that is not 8 bytes")
            keys = self.keys_at(pg, ptr[1:])
            bounds = np.concatenate(([lo_key], keys, [hi_key]))
            if np.any(np.diff(bounds) <= 0):
                raise ShardDamage(f"branch page {pgno} has keys out of order")
            children = lo | (hi << 16) | (nflags << 32)
            for k, child in enumerate(children.tolist()):
                self.walk(child, depth + 1, want_depth, int(bounds[k]), int(bounds[k + 1]))
            return
        if flags != P_LEAF or depth != want_depth:
            raise ShardDamage(f"page {pgno} at depth {depth} is not the expected "
                              f"{'leaf' if depth == want_depth else 'branch'} page "
                              f"(flags 0x{flags:x})")  # fmt: skip
        if np.any(ksize != 8) or np.any((nflags & ~F_BIGDATA) != 0):
            raise ShardDamage(f"leaf page {pgno} has a node that is not an 8-byte key "
                              "with a plain value")  # fmt: skip
        keys = self.keys_at(pg, ptr)
        if keys[0] < lo_key or keys[-1] >= hi_key or np.any(np.diff(keys) <= 0):
            raise ShardDamage(f"leaf page {pgno} has keys out of order or outside the "
                              "shard's record range")  # fmt: skip
        dsize = lo | (hi << 16)
        big = (nflags & F_BIGDATA) != 0
        inline_end = ptr + 16 + np.where(big, 8, dsize)
        if np.any(inline_end > self.psize):
            raise ShardDamage(f"leaf page {pgno} has a value running past the page end")
        if np.any(big):
            ovpg = pg[(ptr[big] + 16)[:, None] + _ARANGE8].view("<u8").reshape(-1)
            ovpg = ovpg.astype(np.uint64)
            limit = np.uint64(self.n_pages)
            if np.any(ovpg < 2) or np.any(ovpg >= limit):
                raise ShardDamage(f"leaf page {pgno} points to an overflow page outside "
                                  "the file")  # fmt: skip
            n = (HDR - 1 + dsize[big]) // self.psize + 1
            start = ovpg.astype(np.int64)
            if np.any(start + n > self.n_pages):
                raise ShardDamage(f"leaf page {pgno} has a value running past the file end")
            self.extents.append(np.stack([start, n], axis=1))
        self.keys.append(keys)


def _check(fd: int, size: int, first: int, count: int) -> None:
    if size < 2 * 512:
        raise ShardDamage(f"file is {size} bytes, too short for LMDB's two meta pages")
    m0 = _meta(os.pread(fd, 512, 0), 0)
    psize = m0["psize"]
    if psize < 512 or psize > 0x8000 or psize & (psize - 1):
        raise ShardDamage(f"meta page 0 has an implausible page size {psize}")
    if size % psize:
        raise ShardDamage(f"file is {size} bytes, not a whole number of {psize}-byte pages "
                          "(truncated?)")  # fmt: skip
    m1 = _meta(os.pread(fd, 512, psize), 1)
    if m1["psize"] != psize:
        raise ShardDamage(f"meta pages disagree on the page size ({psize} vs {m1['psize']})")
    meta = m1 if m0["txnid"] < m1["txnid"] else m0  # as mdb_env_pick_meta
    which = 1 if meta is m1 else 0
    last_pg = meta["last_pg"]
    if (last_pg + 1) * psize > size:
        raise ShardDamage(f"meta page {which} says the file has {last_pg + 1} pages but it "
                          f"has {size // psize} (truncated?)")  # fmt: skip
    if meta["mapsize"] < (last_pg + 1) * psize or meta["mapsize"] > 1 << 46:
        raise ShardDamage(f"meta page {which} has an implausible map size {meta['mapsize']}")
    _pad, flags, depth, _b, _l, _o, entries, root = meta["main"]
    if flags != 0:
        raise ShardDamage(f"meta page {which}: main database flags 0x{flags:x}, expected 0")
    if entries != count:
        raise ShardDamage(f"meta page {which}: {entries} records, the manifest says {count}")
    if count == 0:
        if root != P_INVALID:
            raise ShardDamage(f"meta page {which}: an empty database with a root page")
        return
    if not 1 <= depth <= MAX_DEPTH:
        raise ShardDamage(f"meta page {which}: implausible tree depth {depth}")
    w = _Walk(fd, size, psize, last_pg)
    w.walk(root, 1, depth, first, first + count)
    # each leaf's keys increase inside its bounds and the bounds partition the range, so the
    # right number of keys means exactly the records first .. first + count - 1
    n_keys = sum(len(k) for k in w.keys)
    if n_keys != count:
        raise ShardDamage(f"the B-tree holds {n_keys} keys, expected records "
                          f"{first}..{first + count - 1}")  # fmt: skip
    if w.extents:
        ext = np.concatenate(w.extents)
        ext = ext[np.argsort(ext[:, 0], kind="stable")]
        if np.any(ext[1:, 0] < ext[:-1, 0] + ext[:-1, 1]):
            raise ShardDamage("two records' overflow pages overlap")
        tree = np.fromiter(w.seen, np.int64)
        pos = np.searchsorted(ext[:, 0], tree, side="right") - 1
        ok = pos >= 0
        if np.any(tree[ok] < ext[pos[ok], 0] + ext[pos[ok], 1]):
            raise ShardDamage("a record's overflow pages overlap a B-tree page")


def check_shard(path, first: int, count: int) -> str | None:
    """None when the LMDB file at ``path`` is sound and holds exactly the keys of records
    ``first .. first + count - 1``; else a one-line reason."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    try:
        _check(fd, os.fstat(fd).st_size, int(first), int(count))
    except ShardDamage as exc:
        return f"LMDB structure damaged: {exc}"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    return None
