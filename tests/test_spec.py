"""Pipelines as data: JSON round trips of every registered op, and the one-line errors."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import augpipe
from augpipe import transforms as T
from augpipe.errors import AugpipeError, ConfigError
from augpipe.ops.base import Op
from augpipe.spec import load_pipeline, register_op, register_string_spec, registered_ops
from augpipe.spec.codec import FORMAT_VERSION

EIG = {"eigval": (0.2, 0.02, 0.005), "eigvec": np.eye(3).tolist()}
IMG = ((np.arange(36 * 44 * 3) * 7) % 251).astype(np.uint8).reshape(36, 44, 3)
STATS = types.SimpleNamespace(stats=EIG, sizes=[(36, 44)], path="fake")


def _trip(pipe):
    return T.Compose.from_dict(json.loads(json.dumps(pipe.to_dict())))


# ------------------------------------------------------------------ random ops from type hints


def _value(hint, depth: int):
    """A strategy for a field of type ``hint`` (values an op may still reject)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_value(a, depth) for a in typing.get_args(hint)])
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(1, 48)
    if hint is float:
        return st.one_of(st.floats(0, 1), st.floats(-2, 3)).filter(lambda x: x == x)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_value(args[0], depth), min_size=1, max_size=3).map(tuple)
        if args and all(a is float for a in args) and len(args) == 2:
            return st.tuples(_value(float, depth), _value(float, depth)).map(
                lambda t: tuple(sorted(t))
            )
        return st.tuples(*[_value(a, depth) for a in args]) if args else st.none()
    if isinstance(hint, type) and issubclass(hint, Op):
        return _any_op(depth + 1) if depth < 2 else st.nothing()
    return st.nothing()  # a type this test does not know: the field keeps its default


def _op_strategy(cls, depth: int = 0):
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in fields(cls):
        if f.init:
            kw[f.name] = st.one_of(st.just(_DEFAULT), _value(hints[f.name], depth))
    return st.fixed_dictionaries(kw).map(lambda d: _build(cls, d)).filter(lambda op: op is not None)


_DEFAULT = object()


def _build(cls, d):
    kw = {k: v for k, v in d.items() if v is not _DEFAULT}
    try:
        return cls(**kw)
    except (AugpipeError, TypeError, ValueError):
        return None


def _fused_names():
    # Mosaic and RandomIoUCrop need a dataset's targets: tested in test_detection_ops
    needs_targets = ("Mosaic", "RandomIoUCrop")
    return [n for n, c in registered_ops().items()
            if c.kind not in ("sample", "batch") and n not in needs_targets]  # fmt: skip


def _any_op(depth: int = 0):
    return st.sampled_from(_fused_names()).flatmap(
        lambda n: _op_strategy(registered_ops()[n], depth)
    )


def test_every_transform_is_registered():
    names = registered_ops()
    for cls in T.OPS:
        assert names[cls.__name__] is cls


@pytest.mark.parametrize("name", _fused_names())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), seed=st.integers(0, 2**32), epoch=st.integers(0, 50),
       index=st.integers(0, 10**6), fill=st.integers(0, 255))  # fmt: skip
def test_json_round_trip_gives_identical_outputs(name, data, seed, epoch, index, fill):
    op = data.draw(_op_strategy(registered_ops()[name]))
    ops = [op]
    if op.kind != "size" and data.draw(st.booleans()):
        ops = [data.draw(_op_strategy(T.RandomResizedCrop)), op]
    try:
        pipe = T.Compose(ops, fill=fill).bind(STATS)
    except ConfigError:
        assume(False)
    back = _trip(pipe)
    assert back.to_dict() == pipe.to_dict()
    assert back.ops == pipe.ops
    assert np.array_equal(back(IMG, index, seed, epoch), pipe(IMG, index, seed, epoch))


def test_round_trip_of_a_full_pipeline_through_a_file(tmp_path):
    pipe = T.Compose(
        [
            T.RandomResizedCrop((24, 20), scale=[0.2, 1.0]),
            T.HorizontalFlip(),
            T.Affine(rotate=10, shear=(-3, 5), translate=0.1, stretch=(0.9, 1.1), p=0.7),
            T.LensDistortion(0.1, p=0.5),
            T.ColorJitter(0.4, (0.5, 1.2), 0.3),
            T.PCALighting(0.1, **EIG),
        ],
        fill=7,
        fast_decode=False,
    )
    path = pipe.save(tmp_path / "pipeline.json")
    text = (tmp_path / "pipeline.json").read_text()
    assert json.loads(text)["version"] == FORMAT_VERSION
    for spec in (path, tmp_path / "pipeline.json", text, json.loads(text)):
        back = load_pipeline(spec)
        assert (back.fill, back.fast_decode) == (7, False)
        for i in range(5):
            assert np.array_equal(back(IMG, i, 3, 1), pipe(IMG, i, 3, 1))


# ------------------------------------------------------------------ ops added outside augpipe


@register_op("TestPolicy")
@dataclass(frozen=True)
class OneOfColor(Op):
    """A policy-like op: sub-ops in a tuple field (applies the first, for the test)."""

    ops: tuple[Op, ...] = ()
    weights: tuple[float, ...] = ()
    kind: ClassVar[str] = "color"

    def color(self, indices, seed, epoch, pos):
        return self.ops[0].color(indices, seed, epoch, pos)


@dataclass(frozen=True)
class Unregistered(Op):
    p: float = 0.5
    kind: ClassVar[str] = "geometry"

    def matrices(self, indices, seed, epoch, pos, out_hw):
        return T.HorizontalFlip(self.p).matrices(indices, seed, epoch, pos, out_hw)


def test_registered_op_with_nested_ops_and_tuples_round_trips():
    pol = OneOfColor(ops=(T.ColorJitter(0.3, 0.2), T.PCALighting(0.1, **EIG)), weights=(0.5, 1))
    pipe = T.Compose([T.CenterCrop(24), pol])
    d = pipe.to_dict()
    assert d["ops"][1]["op"] == "TestPolicy"
    assert d["ops"][1]["ops"][0] == {"op": "ColorJitter", "brightness": 0.3, "contrast": 0.2,
                                     "saturation": 0.0, "hue": 0.0}  # fmt: skip
    back = _trip(pipe)
    assert back.ops == pipe.ops and isinstance(back.ops[1].ops, tuple)
    assert np.array_equal(back(IMG, 5, 1, 1), pipe(IMG, 5, 1, 1))


def test_unregistered_op_is_written_as_its_import_path():
    pipe = T.Compose([Unregistered(0.25)])
    d = pipe.to_dict()
    assert d["ops"][0]["op"] == f"{__name__}:Unregistered"
    assert _trip(pipe).ops == pipe.ops


def test_op_defined_in_a_function_cannot_be_written():
    @dataclass(frozen=True)
    class Local(Op):
        kind: ClassVar[str] = "geometry"

    with pytest.raises(ConfigError, match="importable module"):
        T.Compose([Local()]).to_dict()


# ------------------------------------------------------------------ errors


def _doc(*ops, **top):
    return json.dumps({"version": 1, "ops": list(ops), **top})


@pytest.mark.parametrize(
    "text, words",
    [
        (_doc(version=2), ["version", "2 is newer", "upgrade augpipe"]),
        (json.dumps({"ops": []}), ["version", "missing"]),
        (_doc({"op": "Flipp"}), ["ops[0]", "unknown op 'Flipp'", "HorizontalFlip"]),
        (_doc({"op": "HorizontalFlip", "q": 1}), ["ops[0] (HorizontalFlip)", "unknown field 'q'"]),
        (_doc({"op": "HorizontalFlip", "p": "1"}), ["(HorizontalFlip).p", "expected float"]),
        (_doc({"op": "HorizontalFlip", "p": 3}), ["HorizontalFlip.p", "<= 1.0"]),
        (_doc({"op": "RandomResizedCrop", "size": [1, 2, 3]}), ["(RandomResizedCrop).size"]),
        (_doc({"op": "CenterCrop", "short_side": True}), ["(CenterCrop).short_side"]),
        (_doc({"op": "CenterCrop"}, {"op": "CenterCrop"}), ["at most one sizing op"]),
        (_doc(extra=1), ["unknown field 'extra'"]),
        (_doc(fill=300), ["fill", "0..255"]),
        ('{"version": 1, "ops": [', ["not valid JSON", "line 1"]),
        ('{"version": 1, "ops": [{"op": "HorizontalFlip", "p": NaN}]}', ["not valid JSON"]),
        (_doc({"op": "no_such_module_x:Op"}), ["no_such_module_x", "cannot import"]),
        (_doc({"op": "json:dumps"}), ["not an augpipe Op", "UserOp"]),
        ("[]", ["a list"]),
    ],
)
def test_bad_pipeline_files_give_one_line_errors(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(str(path))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(str(path))
    for w in words:
        assert w in msg


def test_missing_file_and_unknown_string_spec():
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline("does/not/exist.json")
    with pytest.raises(ConfigError, match="not a known string spec") as info:
        load_pipeline("zzz-m9-mstd0.5")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="expected a Compose"):
        load_pipeline(3)


def test_string_spec_parsers_are_consulted():
    @register_string_spec("testspec")
    def parse(text, size):
        m = float(text.split("-")[1])
        return [T.RandomResizedCrop(size), T.ColorJitter(m / 10)]

    pipe = load_pipeline("testspec-4", size=32)
    assert pipe.ops == [T.RandomResizedCrop(32), T.ColorJitter(0.4)]
    assert "testspec" in augpipe.spec.string_specs()


def test_top_level_names():
    assert augpipe.load_pipeline is load_pipeline
    assert "load_pipeline" in augpipe.__all__
