"""Run ``augpipe train`` (argv) in this process, with a deterministic way to interrupt it.

Used by tests/test_train_resume.py as ``python tests/train_driver.py train DATA ...`` (also under
torchrun). Environment:

- ``KILL_AT_STEP=K`` and ``KILL_SIGNAL=KILL|TERM|INT``: send the signal right after the K-th
  optimiser step of this process (counted from this process's start); ``KILL_TARGET=self``
  (default), ``group`` (this process's group: the loader workers too, as torchrun and Slurm do)
  or ``parent`` (torchrun's agent, which forwards it to every rank; this rank then waits a
  second, so every rank has the signal before the step ends and all stop after step K). Under
  torchrun only the rank ``KILL_RANK`` (default 0) does it.
- ``KILL_IN_SAVE=N``: SIGKILL this process in the middle of writing its N-th checkpoint file
  (half of the bytes written, not yet renamed).

Single-threaded torch, so the CPU kernels give the same bits in every run.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import torch


def _arm_step_kill() -> None:
    at = int(os.environ["KILL_AT_STEP"])
    sig = getattr(signal, "SIG" + os.environ.get("KILL_SIGNAL", "KILL"))
    target = os.environ.get("KILL_TARGET", "self")
    original = torch.optim.SGD.step
    count = [0]

    def step(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == at:
            if target == "group":
                os.killpg(os.getpgid(0), sig)
            elif target == "parent":
                os.kill(os.getppid(), sig)
                time.sleep(1.0)  # torchrun's forwarded signal arrives before this step ends
            else:
                os.kill(os.getpid(), sig)
        return out

    torch.optim.SGD.step = step


def _arm_save_kill() -> None:
    nth = int(os.environ["KILL_IN_SAVE"])
    original = torch.save
    count = [0]

    def save(obj, f, *args, **kwargs):
        if getattr(f, "name", "") and ".tmp-" in str(f.name):
            count[0] += 1
            if count[0] == nth:
                import io

                buf = io.BytesIO()
                original(obj, buf, *args, **kwargs)
                data = buf.getvalue()
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return original(obj, f, *args, **kwargs)

    torch.save = save  # what augpipe.train.resume.save calls


def main() -> int:
    torch.set_num_threads(1)
    mine = os.environ.get("RANK", "0") == os.environ.get("KILL_RANK", "0")
    if "KILL_AT_STEP" in os.environ and mine:
        _arm_step_kill()
    if "KILL_IN_SAVE" in os.environ:
        _arm_save_kill()
    from augpipe.cli.main import main as cli

    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
