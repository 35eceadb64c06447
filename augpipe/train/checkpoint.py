"""Load an ``--init`` checkpoint: ours (``model.pt``) or torchvision's, with a new head if needed.

Loading uses ``torch.load(weights_only=True)``: a checkpoint from a stranger cannot run code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from augpipe.errors import ConfigError

HEAD_KEYS = ("fc.weight", "fc.bias")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--init: expected a checkpoint file, got {str(path)!r} (no such file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, or holds objects weights_only refuses
        raise ConfigError(
            f"--init: expected a state_dict saved with torch.save, could not read {str(path)!r}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    # common wrappers: {"state_dict": ...} / {"model": ...}
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"--init: expected a dict of tensors in {str(path)!r}")
    return {_strip_prefix(k): v for k, v in obj.items()}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def load_init(model: nn.Module, path: str | Path) -> dict:
    """Copy a checkpoint into ``model``; keep the model's fresh head when the class count differs.

    Returns ``{"head_reinitialised": bool}``. Any other mismatch (a resnet18 checkpoint into a
    resnet50) is a ConfigError naming the first differing keys.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    reinit_head = any(k in state and k in own and state[k].shape != own[k].shape for k in HEAD_KEYS)
    if reinit_head:
        state = {k: v for k, v in state.items() if k not in HEAD_KEYS}
    missing = [k for k in own if k not in state and not (reinit_head and k in HEAD_KEYS)]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        raise ConfigError(
            f"--init: checkpoint {str(path)!r} does not fit this model: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]}; "
            "pick the --model the checkpoint was trained with"
        )
    model.load_state_dict(state, strict=not reinit_head)
    return {"head_reinitialised": reinit_head}
