"""Built-in models for ``augpipe train``: ``resnet18``, ``resnet34``, ``resnet50``, ``small_cnn``.

Every model names its parameter groups by stage (``model.stages``: ``stem``, ``layer1``..,
``fc``) so the trainer can freeze stages and scale their learning rates.

    >>> from augpipe.models import get_model
    >>> model = get_model("resnet18", num_classes=10)
"""

from __future__ import annotations

from collections.abc import Callable

from augpipe.errors import bad_param
from augpipe.models.resnet import ResNet, resnet18, resnet34, resnet50
from augpipe.models.small import SmallCNN, small_cnn

MODELS: dict[str, Callable] = {
    "small_cnn": small_cnn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
}

# parameter-name prefix -> stage, for the names both families use
_STEM_PREFIXES = ("conv1.", "bn1.", "stem.")

__all__ = [
    "MODELS",
    "ResNet",
    "SmallCNN",
    "get_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "small_cnn",
    "stage_of",
]


def get_model(name: str, num_classes: int, **kwargs):
    """Build a registered model; ``ConfigError`` naming the choices for an unknown name."""
    if name not in MODELS:
        raise bad_param("model", f"one of {sorted(MODELS)}", name, "pick a listed model")
    return MODELS[name](num_classes=num_classes, **kwargs)


def stage_of(param_name: str) -> str:
    """The stage a parameter belongs to: ``stem``, ``layerN`` or ``fc``.

    Works on names with a DDP/compile prefix too (``module.``, ``_orig_mod.``).
    """
    for wrapper in ("module.", "_orig_mod."):
        while param_name.startswith(wrapper):
            param_name = param_name[len(wrapper) :]
    if param_name.startswith(_STEM_PREFIXES):
        return "stem"
    head = param_name.split(".", 1)[0]
    if head.startswith("layer") or head == "fc":
        return head
    raise ValueError(f"parameter {param_name!r} belongs to no known stage")
