"""Policy config strings, as timm writes them, and the torchvision names.

==========================  ===========================================================
``rand-m9-mstd0.5-inc1``    ``TimmRandAugment``: keys m, n, p, mstd, mmax, inc, t
``augmix-m5-w4-d2``         ``AugMix``: keys m, w, d, a, mstd (b, blended, is not supported)
``original``, ``v0``, ...   ``TimmAutoAugment`` (also originalr, v0r); key mstd
``autoaugment``             torchvision's ``AutoAugment("imagenet")``
``trivialaugment``          torchvision's ``TrivialAugmentWide()``
``randaugment``             torchvision's ``RandAugment()``; keys n, m, b (num_ops,
                            magnitude, num_magnitude_bins)
==========================  ===========================================================

Differences from timm's parser: ``inc0`` means off (timm reads any value as on), an unknown
key or a key without a value is an error naming it (timm ignores or asserts).

``policy_from_string`` gives the op; as a pipeline (``augpipe.load_pipeline``, ``--pipeline``)
a string spec is the training pipeline timm builds: RandomResizedCrop(size), HorizontalFlip(),
the policy.
"""

from __future__ import annotations

import math
import re

from augpipe.errors import ConfigError
from augpipe.spec.files import register_string_spec

_KEYS = {
    "rand": ("m", "n", "p", "mstd", "mmax", "inc", "t"),
    "augmix": ("m", "w", "d", "a", "mstd"),
    "aa": ("mstd",),
    "randaugment": ("n", "m", "b"),
    "trivialaugment": ("b",),
    "autoaugment": (),
}
AA_NAMES = ("original", "originalr", "v0", "v0r")
NAMES = ("rand", "augmix", "randaugment", "trivialaugment", "autoaugment") + AA_NAMES


def _sections(text: str, family: str) -> dict[str, str]:
    parts = text.split("-")
    out: dict[str, str] = {}
    keys = _KEYS[family]
    for c in parts[1:]:
        if family == "rand" and c.startswith("t"):
            key, val = "t", c[1:]
        else:
            m = re.match(r"^([a-z]+)(.*)$", c)
            key, val = (m.group(1), m.group(2)) if m else (c, "")
        if key not in keys:
            raise ConfigError(
                f"{text!r}: unknown key {key!r} in section {c!r}; expected keys "
                f"{', '.join(keys) or 'none'} (e.g. rand-m9-mstd0.5-inc1)"
            )
        if val == "" and key != "t":
            raise ConfigError(f"{text!r}: key {key!r} has no value; write e.g. {key}1")
        if key in out:
            raise ConfigError(f"{text!r}: key {key!r} given twice")
        out[key] = val
    return out


def _num(text: str, key: str, val: str, kind=float):
    try:
        v = kind(val)
    except ValueError:
        raise ConfigError(
            f"{text!r}: key {key!r}: expected {'an integer' if kind is int else 'a number'}, "
            f"got {val!r}"
        ) from None
    if isinstance(v, float) and math.isnan(v):
        raise ConfigError(f"{text!r}: key {key!r}: expected a number, got {val!r}")
    return v


def _build(text: str):
    from augpipe.ops.policies.augmix import AugMix
    from augpipe.ops.policies.timm import TimmAutoAugment, TimmRandAugment
    from augpipe.ops.policies.torchvision import AutoAugment, RandAugment, TrivialAugmentWide

    name = text.split("-", 1)[0]
    if name == "rand":
        s = _sections(text, "rand")
        kw = {}
        for key, kind in (("m", float), ("n", int), ("p", float), ("mstd", float)):
            if key in s:
                kw[key] = _num(text, key, s[key], kind)
        if "mmax" in s:
            kw["mmax"] = _num(text, "mmax", s["mmax"], int) or None
        if "inc" in s:
            kw["inc"] = bool(_num(text, "inc", s["inc"], int))
        if "t" in s:
            kw["t"] = s["t"]
        return TimmRandAugment(**kw)
    if name == "augmix":
        s = _sections(text, "augmix")
        kw = {}
        for key, field, kind in (("m", "severity", float), ("w", "width", int),
                                 ("d", "depth", int), ("a", "alpha", float),
                                 ("mstd", "mstd", float)):  # fmt: skip
            if key in s:
                kw[field] = _num(text, key, s[key], kind)
        return AugMix(**kw)
    if name in AA_NAMES:
        s = _sections(text, "aa")
        mstd = _num(text, "mstd", s["mstd"]) if "mstd" in s else 0.0
        return TimmAutoAugment(name, mstd=mstd)
    if name == "autoaugment":
        _sections(text, "autoaugment")
        return AutoAugment("imagenet")
    if name == "trivialaugment":
        s = _sections(text, "trivialaugment")
        return TrivialAugmentWide(_num(text, "b", s["b"], int) if "b" in s else 31)
    if name == "randaugment":
        s = _sections(text, "randaugment")
        fields = (("n", "num_ops"), ("m", "magnitude"), ("b", "num_magnitude_bins"))
        kw = {f: _num(text, k, s[k], int) for k, f in fields if k in s}
        return RandAugment(**kw)
    raise ConfigError(f"{text!r}: unknown policy {name!r}; expected one of {', '.join(NAMES)}")


def policy_from_string(text: str):
    """The policy op a config string names (see the module docstring)."""
    if not isinstance(text, str) or not text:
        raise ConfigError(f"--aa: expected a policy string such as rand-m9-mstd0.5-inc1, got "
                          f"{text!r}")  # fmt: skip
    try:
        return _build(text.strip())
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(repr(text.strip())) else f"{text!r}: {msg}"
                          ) from None  # fmt: skip


def train_pipeline_ops(text: str, size: int) -> list:
    """timm's training pipeline for a policy string: RandomResizedCrop, HorizontalFlip, policy."""
    from augpipe.ops.flip import HorizontalFlip
    from augpipe.ops.resized_crop import RandomResizedCrop

    return [RandomResizedCrop(size), HorizontalFlip(), policy_from_string(text)]


for _name in NAMES:
    register_string_spec(_name, train_pipeline_ops)
