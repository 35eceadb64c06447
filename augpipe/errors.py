"""Project exceptions.

Every user-facing error names what was wrong and how to fix it. The CLI turns any
``UserError`` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class AugpipeError(Exception):
    """Base class of every error augpipe raises on purpose."""


class UserError(AugpipeError, ValueError):
    """Bad argument or bad input: the user can fix it. CLI exit code 2."""


class ConfigError(UserError):
    """An invalid transform, loader or trainer parameter, caught when the pipeline is built."""


class ConfigTypeError(AugpipeError, TypeError):
    """A parameter of the wrong type (for example a string where a number belongs)."""


class DatasetError(UserError):
    """A packed dataset that is missing, incompatible or damaged."""


class InputImageError(UserError):
    """An input image that cannot be packed (corrupt, empty, too large, dangling link)."""


class RemoteError(DatasetError):
    """A remote dataset that cannot be read: network failures after every retry, missing
    optional packages for a URL scheme, a download that does not match the manifest."""


class CheckpointError(UserError):
    """A training checkpoint that is missing, unreadable or from another run (``--resume``)."""


class WorkerError(AugpipeError, RuntimeError):
    """A loader worker failed; the message carries the sample index and the worker's traceback."""


def bad_param(name: str, expected: str, given: object, fix: str = "") -> ConfigError:
    """Build the standard message: ``name: expected ..., got ...; fix``."""
    msg = f"{name}: expected {expected}, got {given!r}"
    if fix:
        msg += f"; {fix}"
    return ConfigError(msg)
