"""The op registry: the name an op has in a pipeline file, and the class a name stands for.

Every op is a frozen dataclass subclass of ``augpipe.ops.base.Op``; nothing else is needed to
make it serialisable:

- augpipe's own ops (classes defined under ``augpipe.``, e.g. those in ``transforms.OPS``) are
  known by their class name: ``"RandomResizedCrop"``;
- ``@register_op`` (or ``@register_op("Name")``) gives any Op subclass a short name;
- any other Op subclass is written as its import path, ``"mypkg.augs:MyOp"``, which a fresh
  interpreter (a loader worker) imports to rebuild it.

Lookup walks the Op subclasses that are imported when it runs: nothing is registered at import
time except by an explicit ``@register_op``.

>>> @register_op
... @dataclass(frozen=True)
... class Posterize(Op): ...
>>> op_class("Posterize") is Posterize
True
"""

from __future__ import annotations

import importlib

from augpipe.errors import ConfigError
from augpipe.ops.base import Op

# explicit registrations: name -> class (filled by @register_op only)
_REGISTERED: dict[str, type] = {}


def register_op(cls_or_name=None):
    """Class decorator: make an Op subclass known in pipeline files under a short name (its
    class name unless given)."""

    def deco(cls: type, name: str | None = None) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Op)):
            raise ConfigError(f"register_op: expected an Op subclass, got {cls!r}")
        name = name or cls.__name__
        other = _REGISTERED.get(name)
        if other is not None and _path(other) != _path(cls):
            raise ConfigError(
                f"register_op: the name {name!r} is taken by {_path(other)}; "
                f"register {_path(cls)} under another name"
            )
        _REGISTERED[name] = cls
        return cls

    if isinstance(cls_or_name, str):
        return lambda cls: deco(cls, cls_or_name)
    if cls_or_name is None:
        return deco
    return deco(cls_or_name)


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _subclasses(cls: type):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _builtin() -> dict[str, list[type]]:
    names: dict[str, list[type]] = {}
    for cls in _subclasses(Op):
        if (
            cls.__module__.split(".")[0] == "augpipe"
            and "<locals>" not in cls.__qualname__
            and not cls.__name__.startswith("_")
        ):
            names.setdefault(cls.__name__, [])
            if cls not in names[cls.__name__]:
                names[cls.__name__].append(cls)
    return names


def registered_ops() -> dict[str, type]:
    """Every op known by a short name now: augpipe's own (those imported) and registered ones."""
    import augpipe.transforms  # noqa: F401  (the built-in ops; a no-op once imported)

    out = {name: classes[0] for name, classes in _builtin().items() if len(classes) == 1}
    out.update(_REGISTERED)
    return dict(sorted(out.items()))


def op_name(op: Op) -> str:
    """The name ``op`` is written under in a pipeline file."""
    cls = type(op)
    for name, known in _REGISTERED.items():
        if known is cls:
            return name
    if cls.__module__.split(".")[0] == "augpipe" and _builtin().get(cls.__name__) == [cls]:
        return cls.__name__
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise ConfigError(
            f"{cls.__qualname__}: an op defined in {cls.__module__!r}"
            f"{' inside a function' if '<locals>' in cls.__qualname__ else ''} has no "
            "import path a worker could use; move it to an importable module "
            "(or decorate it with augpipe.spec.register_op)"
        )
    return _path(cls)


def import_path(path: str, what: str = "op"):
    """The object ``"package.module:Name"`` (or ``"package.module.Name"``) names."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ConfigError(
            f"{what} {path!r}: expected an import path 'package.module:Name'; check the spelling"
        )
    try:
        obj = importlib.import_module(mod_name)
    except Exception as exc:
        raise ConfigError(
            f"{what} {path!r}: cannot import module {mod_name!r} "
            f"({type(exc).__name__}: {exc}); make it importable (pip install -e it, or add its "
            "folder to PYTHONPATH) in the main process and in loader workers"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{what} {path!r}: module {mod_name!r} has no attribute {attr!r}; "
                "check the name after the ':'"
            ) from None
    return obj


def op_class(name: str, where: str = "pipeline") -> type:
    """The Op subclass a pipeline file's ``"op"`` value names (a short name or an import path)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: expected an op name (a string), got {name!r}")
    if ":" in name:
        cls = import_path(name, f"{where}: op")
        if not (isinstance(cls, type) and issubclass(cls, Op)):
            raise ConfigError(
                f"{where}: op {name!r} is {type(cls).__name__} {cls!r}, not an augpipe Op "
                "subclass; wrap a plain function or class as "
                f'{{"op": "UserOp", "path": "{name}"}} (per sample) or '
                f'{{"op": "UserBatchOp", "path": "{name}"}} (per batch)'
            )
        return cls
    known = registered_ops()
    if name in known:
        return known[name]
    classes = _builtin().get(name, [])
    if len(classes) > 1:
        raise ConfigError(
            f"{where}: op name {name!r} is ambiguous ({', '.join(map(_path, classes))}); "
            "write the import path instead"
        )
    raise ConfigError(
        f"{where}: unknown op {name!r}; expected one of {', '.join(known)}, "
        "or an import path 'package.module:Name'"
    )
