"""Pipeline files and string specs: ``load_pipeline`` / ``save_pipeline``.

``load_pipeline`` takes a ``Compose``, a pipeline dict, a JSON string, the path of a JSON file
(see ``augpipe.spec.codec`` for the format), or a registered string spec such as timm's
``"rand-m9-mstd0.5-inc1"``: the text before the first ``-`` names a parser registered with
``register_string_spec``.

>>> pipe = Compose([RandomResizedCrop(224), HorizontalFlip()])
>>> save_pipeline(pipe, "pipeline.json")
>>> load_pipeline("pipeline.json").to_dict() == pipe.to_dict()
True
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable

from augpipe.errors import ConfigError
from augpipe.spec.codec import decode_pipeline, pipeline_to_dict

# Modules that register string-spec parsers when imported; imported on the first string spec
# (so that importing augpipe registers nothing). Add yours here or call register_string_spec.
STRING_SPEC_MODULES: list[str] = ["augpipe.ops.policies.strings"]

_PARSERS: dict[str, Callable] = {}


def register_string_spec(name: str, parser: Callable | None = None):
    """Make ``load_pipeline("NAME-...")`` call ``parser(text, size=...)``, which returns a
    ``Compose`` or a list of ops. Usable as a decorator: ``@register_string_spec("rand")``."""
    if not isinstance(name, str) or not name or "-" in name:
        raise ConfigError(f"register_string_spec: expected a name without '-', got {name!r}")

    def deco(fn: Callable) -> Callable:
        _PARSERS[name] = fn
        return fn

    return deco if parser is None else deco(parser)


def string_specs() -> list[str]:
    """The names of the registered string-spec parsers."""
    for mod in STRING_SPEC_MODULES:
        importlib.import_module(mod)
    return sorted(_PARSERS)


def _compose():
    from augpipe.transforms import Compose

    return Compose


def from_dict(d, where: str = "pipeline"):
    Compose = _compose()
    kwargs = decode_pipeline(d, where)
    try:
        return Compose(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _read_json(text: str, where: str):
    def no_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix the file, or write it with pipe.save(path)"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None


def _from_file(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"pipeline file {path}: not found; pass the path of a JSON file written by "
            "pipe.save(path), or a registered string spec"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"pipeline file {path}: cannot be read ({exc})") from None
    return from_dict(_read_json(text, path), path)


def _from_string_spec(text: str, size: int):
    name = text.split("-", 1)[0]
    names = string_specs()
    parser = _PARSERS.get(name)
    if parser is None:
        known = f"registered string specs: {', '.join(names)}" if names else (
            "no string specs are registered")  # fmt: skip
        raise ConfigError(
            f"pipeline {text!r}: not a file, not JSON, and not a known string spec "
            f"({known}); pass the path of a pipeline .json file"
        )
    try:
        result = parser(text, size=size)
    except ConfigError as exc:
        raise ConfigError(f"pipeline {text!r}: {exc}") from None
    Compose = _compose()
    if isinstance(result, Compose):
        return result
    try:
        return Compose(list(result))
    except ConfigError as exc:
        raise ConfigError(f"pipeline {text!r}: {exc}") from None


def is_string_spec(spec) -> bool:
    """Whether ``load_pipeline`` reads ``spec`` as a string spec (not a file, JSON or dict)."""
    if not isinstance(spec, str):
        return False
    text = spec.strip()
    return not (
        text.startswith("{")
        or text.lower().endswith(".json")
        or os.path.sep in text
        or os.path.exists(text)
    )


def load_pipeline(spec, *, size: int = 224):
    """A ``Compose`` from a pipeline (returned as is), a dict, a JSON string, a JSON file's
    path, or a registered string spec (``size``: the output size a string spec should use)."""
    Compose = _compose()
    if isinstance(spec, Compose):
        return spec
    if isinstance(spec, dict):
        return from_dict(spec, "pipeline dict")
    if isinstance(spec, os.PathLike):
        return _from_file(os.fspath(spec))
    if not isinstance(spec, str):
        raise ConfigError(
            f"pipeline: expected a Compose, a dict, a JSON file path or a string spec, "
            f"got {type(spec).__name__}"
        )
    text = spec.strip()
    if is_string_spec(text):
        return _from_string_spec(text, size)
    if text.startswith("{"):
        return from_dict(_read_json(text, "pipeline JSON string"), "pipeline JSON string")
    return _from_file(text)


def save_pipeline(pipe, path) -> str:
    """Write ``pipe`` as JSON to ``path`` (atomically: a reader never sees half a file)."""
    path = os.fspath(path)
    text = json.dumps(pipeline_to_dict(pipe), indent=2, allow_nan=False) + "\n"
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
