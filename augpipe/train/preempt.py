"""SIGTERM and Ctrl-C during training: finish the step, write a checkpoint, stop, exit 143 / 130.

Schedulers stop jobs with SIGTERM and follow with SIGKILL after a grace period (Slurm
``--signal``, Kubernetes ``terminationGracePeriodSeconds``). While ``train()`` runs,
``StopSignals`` turns SIGTERM and SIGINT into a request that the training loop reads at the next
step boundary (and between validation batches). With torchrun the ranks agree on the step:
every rank asks ``requested()`` at the same points and the answer is the maximum over ranks,
so a signal seen by one rank stops all of them at the same step. A second Ctrl-C stops at once
(``KeyboardInterrupt``, no checkpoint).

>>> with StopSignals() as stop:
...     while not stop.requested(torch.device("cpu")):
...         ...  # one step
"""

from __future__ import annotations

import signal
import threading

import torch

from augpipe.errors import AugpipeError
from augpipe.train import distributed

HANDLED = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(AugpipeError):
    """``train()`` stopped on SIGTERM/SIGINT after writing a checkpoint.

    ``signum``, ``exit_code`` (128 + signum: 143 for SIGTERM, 130 for Ctrl-C), ``checkpoint``
    (its path) and ``run_dir``; the message says how to continue.
    """

    def __init__(self, signum: int, checkpoint, run_dir, step: int):
        self.signum, self.exit_code = int(signum), 128 + int(signum)
        self.checkpoint, self.run_dir, self.step = checkpoint, run_dir, step
        name = signal.Signals(self.signum).name
        super().__init__(
            f"stopped by {name} after step {step}; checkpoint {checkpoint}; "
            f"continue with: augpipe train ... --resume {run_dir}"
        )


class StopSignals:
    """Context manager: SIGTERM/SIGINT set ``signum`` instead of killing the process.

    Handlers are installed only in the main thread (elsewhere signals cannot be caught) and
    the previous ones are restored on exit.
    """

    def __init__(self) -> None:
        self.signum = 0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, no checkpoint
        self.signum = max(self.signum, int(signum))

    def requested(self, device: torch.device) -> int:
        """The signal to stop for (0: none), agreed by every rank.

        A collective under torchrun: every rank must call it at the same points.
        """
        if distributed.world_size_from_env() > 1:
            (agreed,) = distributed.all_reduce([float(self.signum)], device, op="max")
            return int(agreed)
        return self.signum
