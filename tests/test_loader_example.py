"""examples/numpy_softmax.py: a NumPy-only trainer on output="numpy" runs and learns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "numpy_softmax.py"


def test_numpy_trainer_runs_without_torch(tiny_packed):
    args = [str(tiny_packed), "--steps", "30", "--workers", "1"]
    wrapper = (
        "import runpy, sys\n"
        f"sys.argv = ['numpy_softmax.py', *{args!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'the NumPy example imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    first_loss, last_loss = (float(w) for w in last.replace(",", "").split() if _num(w))
    assert last_loss < first_loss  # it learns (3 classes: chance is ln 3 = 1.10)


def _num(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return "." in word
