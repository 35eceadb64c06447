"""Pipelines as plain data: ``Compose`` <-> a JSON-able dict, exactly.

The format (``FORMAT_VERSION`` 1)::

    {"format": "augpipe.pipeline", "version": 1, "fill": 0, "fast_decode": true,
     "ops": [{"op": "RandomResizedCrop", "size": 224, "scale": [0.08, 1.0],
              "ratio": [0.75, 1.3333333333333333]},
             {"op": "HorizontalFlip", "p": 0.5}]}

Each op is ``{"op": NAME, FIELD: VALUE, ...}`` with NAME from ``augpipe.spec.registry`` and the
fields of the op's dataclass (omitted ones take their defaults). Tuples are written as lists
and read back as tuples; an op inside a field (a policy's sub-ops) is an op dict. Floats are
written with ``repr``, so every value (and every output bit) survives the round trip.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing

import numpy as np

from augpipe.errors import AugpipeError, ConfigError
from augpipe.ops.base import Op
from augpipe.spec.registry import op_class, op_name

FORMAT = "augpipe.pipeline"
FORMAT_VERSION = 1
_TOP_KEYS = ("format", "version", "fill", "fast_decode", "dct_slack", "ops")


# ----------------------------------------------------------------------------- encoding


def encode_value(value, where: str):
    """A field value as JSON data (None, bool, int, float, str, list, dict)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float)):
        if isinstance(value, float) and not np.isfinite(value):
            raise ConfigError(f"{where}: {value!r} cannot be written to a pipeline file")
        return value
    if isinstance(value, Op):
        return encode_op(value, where)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return [encode_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (dict, types.MappingProxyType)):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be strings, got {k!r}")
            out[k] = encode_value(v, f"{where}.{k}")
        return out
    raise ConfigError(
        f"{where}: a {type(value).__name__} ({value!r}) cannot be written to a pipeline file; "
        "use numbers, strings, booleans, None, tuples, dicts or ops"
    )


def _init_fields(cls: type):
    return [f for f in dataclasses.fields(cls) if f.init]


def encode_op(op: Op, where: str = "op") -> dict:
    name = op_name(op)
    out = {"op": name}
    for f in _init_fields(type(op)):
        out[f.name] = encode_value(getattr(op, f.name), f"{where} ({name}).{f.name}")
    return out


def pipeline_to_dict(pipe) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "fill": int(pipe.fill),
        "fast_decode": bool(pipe.fast_decode),
        # written only when set: the JSON of a pipeline without it is what it always was
        **({"dct_slack": pipe.dct_slack} if getattr(pipe, "dct_slack", 1.0) != 1.0 else {}),
        "ops": [encode_op(op, f"ops[{i}]") for i, op in enumerate(pipe.ops)],
    }


# ----------------------------------------------------------------------------- decoding


class _Mismatch(Exception):
    pass


def _hint_text(hint) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _decode(value, hint, where: str):
    """``value`` (JSON data) checked against the type ``hint`` and converted (lists -> tuples,
    op dicts -> ops); _Mismatch when it does not fit."""
    if hint is typing.Any:
        return _plain(value, where)
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _decode(value, arm, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.ClassVar:
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value  # an int stays an int: the op saw the same value before the trip
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is tuple or hint is tuple:
        if not isinstance(value, list):
            raise _Mismatch
        args = typing.get_args(hint)
        if not args:
            return tuple(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise _Mismatch
        return tuple(_decode(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise _Mismatch
        args = typing.get_args(hint)
        return [_decode(v, args[0], where) if args else _plain(v, where) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Op):
        if not isinstance(value, dict) or "op" not in value:
            raise _Mismatch
        op = decode_op(value, where)
        if not isinstance(op, hint):
            raise _Mismatch
        return op
    if isinstance(hint, type) and issubclass(hint, numbers.Real):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise _Mismatch
    return _plain(value, where)  # a hint this checker does not know: the op validates it


def _plain(value, where: str):
    """Untyped data: lists become tuples (ops are frozen), op dicts become ops."""
    if isinstance(value, list):
        return tuple(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        if "op" in value:
            return decode_op(value, where)
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    return value


def decode_op(d, where: str = "op") -> Op:
    """An op from ``{"op": NAME, field: value}``; ConfigError naming ``where`` and the field."""
    if not isinstance(d, dict):
        raise ConfigError(f'{where}: expected an op object {{"op": NAME, ...}}, got {d!r}')
    if "op" not in d:
        raise ConfigError(f'{where}: an op object needs "op": NAME, got keys {sorted(d)}')
    cls = op_class(d["op"], where)
    label = f"{where} ({d['op']})"
    fields = {f.name: f for f in _init_fields(cls)}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation this Python cannot evaluate: leave checks to the op
        hints = {}
    kwargs = {}
    for key, value in d.items():
        if key == "op":
            continue
        if key not in fields:
            raise ConfigError(
                f"{label}: unknown field {key!r}; expected one of {', '.join(fields) or '(none)'}"
            )
        hint = hints.get(key, typing.Any)
        try:
            kwargs[key] = _decode(value, hint, f"{label}.{key}")
        except _Mismatch:
            raise ConfigError(
                f"{label}.{key}: expected {_hint_text(hint)}, got {value!r}; "
                f"see docs/transforms.md for {d['op']}'s parameters"
            ) from None
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except (AugpipeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {type(exc).__name__}: {exc}") from None


def decode_pipeline(d, where: str = "pipeline") -> dict:
    """The keyword arguments of ``Compose`` from a pipeline dict (see the module docstring)."""
    if isinstance(d, list):
        raise ConfigError(
            f'{where}: expected a pipeline object {{"version": {FORMAT_VERSION}, "ops": [...]}}, '
            'got a list; wrap it as {"version": 1, "ops": [...]}'
        )
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a pipeline object, got {type(d).__name__}")
    for key in d:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{where}: unknown field {key!r}; expected one of {', '.join(_TOP_KEYS)}"
            )
    if d.get("format", FORMAT) != FORMAT:
        raise ConfigError(f"{where}: format: expected {FORMAT!r}, got {d['format']!r}")
    version = d.get("version")
    if "version" not in d:
        raise ConfigError(f'{where}: version: missing; add "version": {FORMAT_VERSION}')
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{where}: version: expected a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"{where}: version: {version} is newer than this augpipe reads ({FORMAT_VERSION}); "
            "upgrade augpipe, or write the pipeline with the version that reads it"
        )
    fill = d.get("fill", 0)
    if isinstance(fill, bool) or not isinstance(fill, int) or not 0 <= fill <= 255:
        raise ConfigError(f"{where}: fill: expected an integer in 0..255, got {fill!r}")
    fast_decode = d.get("fast_decode", True)
    if not isinstance(fast_decode, bool):
        raise ConfigError(f"{where}: fast_decode: expected true or false, got {fast_decode!r}")
    slack = d.get("dct_slack", 1.0)
    if isinstance(slack, bool) or not isinstance(slack, (int, float)) or not 0.5 <= slack <= 1:
        raise ConfigError(f"{where}: dct_slack: expected a number in 0.5..1, got {slack!r}")
    ops = d.get("ops")
    if not isinstance(ops, list):
        raise ConfigError(f"{where}: ops: expected a list of op objects, got {ops!r}")
    return {
        "ops": [decode_op(op, f"{where}: ops[{i}]") for i, op in enumerate(ops)],
        "fill": fill,
        "fast_decode": fast_decode,
        "dct_slack": float(slack),
    }
