"""Objects as data for fresh worker interpreters: ``describe(obj)`` and ``rebuild(desc)``.

A fresh interpreter cannot inherit the dataset and the pipeline, and augpipe never pickles, so
each is handed over as JSON: ``{"type": "module:QualName", "data": obj.to_dict()}``, rebuilt in
the worker by importing ``module`` and calling ``QualName.from_dict(data)``. ``ShardDataset``
(path and options) and ``Compose`` (the JSON pipeline spec, user ops by import path) provide both;
so can any class of yours, defined in an importable module (never your script's ``__main__``,
which workers do not import).

>>> desc = describe(Compose([RandomResizedCrop(224)]), "pipeline")
>>> rebuild(desc).to_dict() == desc["data"]
True
"""

from __future__ import annotations

import importlib
import json

from augpipe.errors import ConfigError


def describe(obj, param: str) -> dict:
    """JSON-able description of ``obj`` (the Loader parameter ``param``), or ConfigError."""
    cls = type(obj)
    fix = "or use start_method='fork' (Linux), which hands the objects over without copying"
    if not callable(getattr(obj, "to_dict", None)) or not callable(getattr(cls, "from_dict", None)):
        raise ConfigError(
            f"{param}: fresh worker interpreters receive it as data, so it needs to_dict() and a "
            f"from_dict() classmethod (ShardDataset and Compose have them); {cls.__name__} has "
            f"not; add them, {fix}"
        )
    owner = {name: next(k for k in cls.__mro__ if name in vars(k)) for name in
             ("__init__", "to_dict")}  # fmt: skip
    init, to_dict = owner["__init__"], owner["to_dict"]
    if init is not to_dict and issubclass(init, to_dict):  # a subclass with more state
        raise ConfigError(
            f"{param}: {cls.__name__} has its own __init__ but inherits to_dict() from "
            f"{owner['to_dict'].__name__}, which cannot know its state; give {cls.__name__} "
            f"its own to_dict() and from_dict(), {fix}"
        )
    if cls.__module__ == "__main__":
        raise ConfigError(
            f"{param}: {cls.__qualname__} is defined in your script (__main__), which fresh "
            f"worker interpreters never import; move it into a module they can import, {fix}"
        )
    data = obj.to_dict()
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{param}: {cls.__name__}.to_dict() must return plain JSON data ({exc})"
        ) from None
    return {"type": f"{cls.__module__}:{cls.__qualname__}", "data": data}


def rebuild(desc: dict):
    """The object ``describe`` described: import its class, call ``from_dict``."""
    module, _, qualname = desc["type"].partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj.from_dict(desc["data"])
