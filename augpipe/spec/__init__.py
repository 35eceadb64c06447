"""Pipelines as data: JSON files, the op registry, string specs and user ops by import path.

>>> pipe = Compose([RandomResizedCrop(224), HorizontalFlip()])
>>> d = pipe.to_dict()                      # plain JSON data, with a format version
>>> Compose.from_dict(d).to_dict() == d
True
>>> pipe.save("pipeline.json"); load_pipeline("pipeline.json")
Compose([RandomResizedCrop(size=224, ...), HorizontalFlip(p=0.5)])

See docs/transforms.md ("Pipelines as JSON") for the format.
"""

from __future__ import annotations

from augpipe.spec.codec import FORMAT_VERSION, decode_op, encode_op
from augpipe.spec.files import (
    STRING_SPEC_MODULES,
    load_pipeline,
    register_string_spec,
    save_pipeline,
    string_specs,
)
from augpipe.spec.registry import import_path, op_class, op_name, register_op, registered_ops

__all__ = [
    "FORMAT_VERSION",
    "STRING_SPEC_MODULES",
    "decode_op",
    "encode_op",
    "import_path",
    "load_pipeline",
    "op_class",
    "op_name",
    "register_op",
    "register_string_spec",
    "registered_ops",
    "save_pipeline",
    "string_specs",
]
