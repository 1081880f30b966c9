"""TensorRT's two failure kinds: absent from the machine, or an engine build that failed."""

from __future__ import annotations

from edgeopt.harness.runtimes import RuntimeUnavailable

ABSENT = (
    "TensorRT is not installed here: no trtexec on PATH or in /usr/src/tensorrt/bin, and no `tensorrt` "
    "Python package (TensorRT ships with JetPack on Jetsons; it needs an NVIDIA GPU)"
)


class TensorRTUnavailable(RuntimeUnavailable):
    """Neither trtexec nor the tensorrt Python package is present on this machine."""


class TensorRTBuildError(RuntimeError):
    """An engine build failed; the message is one line (naming the op when the parser rejected one)."""
