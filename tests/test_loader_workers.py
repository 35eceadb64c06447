"""Workers never run the user's script; start-up failures name the worker; the next epoch is
prepared ahead with persistent workers, without changing any batch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest
from loader_fakes import BrokenInWorker, FakeDataset, FakePipeline, index_of

from augpipe.errors import ConfigError, WorkerError
from augpipe.loader.loader import Loader

SCRIPT = textwrap.dedent(
    """
    # no `if __name__ == "__main__":` guard, and a live thread: a typical training script
    import sys, threading, zlib
    print("top-level code ran", flush=True)
    with open(sys.argv[1], "a") as f:
        f.write("x")
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()  # e.g. a SummaryWriter
    from augpipe import CenterCrop, Compose, HorizontalFlip, Loader
    method = None if sys.argv[3] == "auto" else sys.argv[3]
    pipe = Compose([CenterCrop(16), HorizontalFlip()])
    loader = Loader(sys.argv[2], 5, pipe, workers=2, output="numpy", start_method=method)
    crc = n = 0
    for epoch in range(2):
        for images, labels in loader:
            crc, n = zlib.crc32(images.tobytes(), crc), n + len(images)
    print("used", loader._pool.method, "samples", n, "crc", crc, flush=True)
    loader.close()
    stop.set()
    """
)


@pytest.mark.parametrize("method", ["auto", "fork", "spawn"])
def test_script_without_main_guard_and_a_live_thread(tiny_packed, tmp_path, method):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    side = tmp_path / "side_effect.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, str(script), str(side), str(tiny_packed), method],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("top-level code ran") == 1, proc.stdout
    assert side.read_text() == "x"
    assert "EOFError" not in proc.stderr and "BrokenPipe" not in proc.stderr
    used = proc.stdout.split("used ")[1].split()[0]
    assert used == ("spawn" if method == "auto" else method)  # a live thread: no fork
    assert "samples 48 " in proc.stdout
    from augpipe import CenterCrop, Compose, HorizontalFlip

    pipe = Compose([CenterCrop(16), HorizontalFlip()])
    crc = 0
    with Loader(tiny_packed, 5, pipe, workers=0, output="numpy") as here:
        for _epoch in range(2):
            for images, _labels in here:
                crc = zlib.crc32(images.tobytes(), crc)
    assert f"crc {crc}\n" in proc.stdout  # the same batches as built in this process


@pytest.mark.parametrize(
    "how,expected",
    [
        ("raise", ["could not start", "RuntimeError: this dataset cannot be opened in a worker",
                   "Worker traceback", "from_dict"]),
        ("exit", ["exited with code 3 while starting", "Its stderr ended with",
                  "disk quota exceeded"]),
    ],
)  # fmt: skip
def test_a_worker_that_fails_to_start_reports_its_own_error(how, expected):
    loader = Loader(BrokenInWorker(20, how), 4, FakePipeline(), workers=2,
                    output="numpy", start_method="spawn")  # fmt: skip
    with pytest.raises(WorkerError) as info:
        next(iter(loader))
    msg = str(info.value)
    assert "loader worker " in msg and "start_method='spawn'" in msg
    assert "EOFError" not in msg and "BrokenPipe" not in msg
    for text in expected:
        assert text in msg
    loader.close()


class _MainOnly(FakePipeline):
    def bind(self, dataset):
        bound = _MainOnly(self.output_shape)
        bound.bound = True
        return bound


_MainOnly.__module__ = "__main__"  # as if defined in the user's script


class _MoreState(FakePipeline):
    def __init__(self, extra: int = 1):
        super().__init__()
        self.extra = extra

    def bind(self, dataset):
        bound = _MoreState(self.extra)
        bound.bound = True
        return bound


def test_spawn_refuses_what_fresh_workers_cannot_rebuild():
    with pytest.raises(ConfigError, match="pipeline: _MainOnly is defined in your script"):
        Loader(FakeDataset(8), 4, _MainOnly(), workers=1, start_method="spawn")
    with pytest.raises(ConfigError, match="_MoreState has its own __init__ but inherits to_dict"):
        Loader(FakeDataset(8), 4, _MoreState(), workers=1, start_method="spawn")
    with pytest.raises(ConfigError, match="start_method.*'spawn' starts fresh interpreters"):
        Loader(FakeDataset(8), 4, FakePipeline(), workers=1, start_method="forkserver")


def _wait_for(path, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


def _epoch(loader) -> list[np.ndarray]:
    return [images.copy() for images, _ in loader]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_next_epoch_is_prepared_while_the_consumer_is_elsewhere(tmp_path, method):
    def make(log=None):
        return Loader(FakeDataset(30), 4, FakePipeline(log=log), seed=5, workers=2, prefetch=3,
                      output="numpy", start_method=method)  # fmt: skip

    ref = make()
    ref_epochs = [_epoch(ref) for _ in range(3)]
    ref.close()
    log = tmp_path / "log"
    log.mkdir()
    with make(str(log)) as lo:
        assert all(np.array_equal(a, b) for a, b in zip(_epoch(lo), ref_epochs[0]))
        # the consumer is not asking for anything: epoch 1's first batch is built anyway
        first = lo.indices(1)[0]
        assert _wait_for(log / f"1-{first}")
        assert lo.state_dict()["epoch"] == 1 and lo.state_dict()["batch"] == 0
        got = _epoch(lo)
        assert len(got) == len(ref_epochs[1])
        assert all(np.array_equal(a, b) for a, b in zip(got, ref_epochs[1]))
        lo.set_epoch(1)  # not the epoch prepared ahead (2): that work is dropped
        assert all(np.array_equal(a, b) for a, b in zip(_epoch(lo), ref_epochs[1]))
        state = None
        for k, (images, _) in enumerate(lo):  # epoch 2, stopped after 3 batches
            assert index_of(images).tolist() == index_of(ref_epochs[2][k]).tolist()
            if k == 2:
                state = lo.state_dict()
                break
    with make() as again:
        again.load_state_dict(state)
        rest = _epoch(again)
    assert all(np.array_equal(a, b) for a, b in zip(rest, ref_epochs[2][3:]))
    assert len(rest) == len(ref_epochs[2]) - 3


def test_a_user_op_a_fresh_worker_cannot_import_is_named(tiny_packed, tmp_path, monkeypatch):
    from augpipe import CenterCrop, Compose, UserOp

    mod = tmp_path / "vanishing_augs.py"
    mod.write_text("def keep(image, rng):\n    return image\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pipe = Compose([CenterCrop(16), UserOp("vanishing_augs:keep")])
    loader = Loader(tiny_packed, 4, pipe, workers=1, output="numpy", start_method="spawn")
    mod.unlink()  # importable here (already imported), gone for a fresh interpreter
    with pytest.raises(WorkerError) as info:
        next(iter(loader))
    msg = str(info.value)
    assert "loader worker 0" in msg and "could not start" in msg
    assert "vanishing_augs:keep" in msg
    loader.close()
