"""Worker failures reach the main process; every way out stops the workers and frees memory."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from loader_fakes import FakeDataset, FakePipeline

from augpipe.errors import WorkerError
from augpipe.loader.loader import Loader


def _children() -> set[int]:
    """Live (non-zombie counts too) child processes of this process, from /proc."""
    me, found = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.add(int(d.name))
    return found


def _shm_files(pid: int | None = None) -> list[str]:
    return [f for f in os.listdir("/dev/shm") if f.startswith(f"augpipe-{pid or os.getpid()}-")]


def _mapped() -> bool:
    """Does this process still map any loader shared memory?"""
    return f"augpipe-{os.getpid()}-" in Path("/proc/self/maps").read_text()


def _assert_clean(before: set[int], collect: bool = True) -> None:
    if collect:
        gc.collect()
    assert _children() - before == set()
    assert _shm_files() == []
    assert not _mapped()


def _drain(it) -> None:
    for _batch in it:
        pass  # nothing kept: a held batch is a view that keeps its slot mapped (on purpose)


def _loader(workers=2, **kw):
    pipe = FakePipeline(**{k: kw.pop(k) for k in ("fail_on", "sleep", "kill_on") if k in kw})
    kw.setdefault("output", "numpy")
    return Loader(FakeDataset(kw.pop("n", 40)), 4, pipe, workers=workers, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_worker_exception_names_the_sample(workers):
    before = _children()
    loader = _loader(workers, fail_on=17)
    with pytest.raises(WorkerError) as info:
        _drain(loader)
    assert info.value.index == 17
    assert "sample 17" in str(info.value) and "cannot augment record 17" in str(info.value)
    if workers:
        assert "Traceback" in str(info.value) and "run_batch" in info.value.worker_traceback
    del info, loader
    _assert_clean(before)


def test_worker_killed_is_an_error_within_seconds():
    before = _children()
    loader = _loader(2, kill_on=21, sleep=0.01)
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match="SIGKILL") as info:
        _drain(loader)
    assert time.monotonic() - t0 < 10
    del info, loader
    _assert_clean(before)


def test_external_sigkill_while_waiting():
    before = _children()
    loader = _loader(2, sleep=0.2, n=200)
    it = iter(loader)
    next(it)
    os.kill(loader.worker_pids[0], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match="killed by SIGKILL") as info:
        _drain(it)
    assert time.monotonic() - t0 < 10
    del info, it, loader
    _assert_clean(before)


@pytest.mark.parametrize("how", ["close", "break", "exception", "gc", "context"])
def test_every_exit_stops_workers_and_frees_memory(how):
    before = _children()
    loader = _loader(2, n=200)
    if how == "close":
        it = iter(loader)
        next(it)
        assert len(_children() - before) == 2
        loader.close()
        del it
    elif how == "break":
        for _batch in loader:
            break
        del _batch
    elif how == "exception":
        with pytest.raises(RuntimeError) as info:
            for _batch in loader:
                raise RuntimeError("training step failed")
        del info, _batch
    elif how == "gc":
        it = iter(loader)
        next(it)
        del it, loader
    elif how == "context":
        with loader:
            next(iter(loader))
    if how != "gc":
        del loader
    # no reference cycles: dropping the last reference is enough, no gc.collect() needed
    _assert_clean(before, collect=how != "gc")


def test_workers_persist_across_epochs_and_restart_after_close():
    loader = _loader(2, n=20)
    list(loader)
    pids = loader.worker_pids
    list(loader)
    assert loader.worker_pids == pids  # no restart between epochs
    loader.close()
    assert loader.worker_pids == []
    assert len(list(loader)) == 5  # iterating again starts fresh workers
    loader.close()


def test_taking_exactly_len_batches_keeps_the_workers_for_the_next_epoch():
    # a trainer that runs len(loader) steps never asks for the StopIteration
    loader = _loader(2, n=20)
    it = iter(loader)
    first = [next(it)[1].copy() for _ in range(len(loader))]
    pids = loader.worker_pids
    del it
    assert loader.epoch == 1 and loader.worker_pids == pids  # not treated as a break
    second = [y.copy() for _, y in loader]
    assert loader.worker_pids == pids
    assert len(second) == len(first)
    loader.close()


def test_ctrl_c_in_a_training_script_cleans_up(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(f"""
        import signal, sys
        # as under a terminal (a shell's background job, e.g. under nohup, starts with SIGINT
        # ignored, and Python keeps that)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from loader_fakes import FakeDataset, FakePipeline
        from augpipe.loader.loader import Loader
        loader = Loader(FakeDataset(100000), 4, FakePipeline(sleep=0.05), workers=2,
                        output="numpy")
        for k, _ in enumerate(loader):
            if k == 2:
                print(*loader.worker_pids, flush=True)
    """)
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _out, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert _shm_files(proc.pid) == []


def test_ring_files_of_killed_loaders_are_removed_by_the_next_one(tmp_path):
    from augpipe.loader.shm import remove_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f"augpipe-{dead.pid}-0123456789ab"
    live = tmp_path / f"augpipe-{os.getpid()}-0123456789ab"
    other = tmp_path / "augpipe-notes.txt"
    for p in (stale, live, other):
        p.write_bytes(b"x")
    assert remove_stale(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()
