"""The deployable formats, defined once: name, file extension, runtime, precision, who builds it, where.

A format is named `<runtime prefix>-<precision>` (`ort-int8`, `tflite-fp16`, `trt-fp16`). The planner
uses this table to name artifacts and pick the rule that builds them, the benchmark stage to pick the
harness runtime, the report to label rows. Adding a format is one row here plus the code that
builds it (a converter, a quantizer or a device-side builder). Torch-free: planning imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.errors import EdgeoptError


@dataclass(frozen=True)
class Format:
    """One deployable format."""

    name: str
    ext: str  # artifact file extension
    runtime: str  # harness runtime that runs it: onnxruntime, tflite, tensorrt
    precision: str  # fp32, fp16, int8
    stage: str  # the stage whose rules build it: convert, quantize, bench (built on the device)
    built_on: str  # "host" (an artifact under results/deploy) or "device" (built there from ONNX)
    from_onnx: bool  # made from an ONNX file alone: models given only as ONNX get it too

    @property
    def on_device(self) -> bool:
        return self.built_on == "device"

    @property
    def bits(self) -> int:
        """Bits per weight and activation of the precision (fp32: 32, fp16: 16, int8: 8)."""
        return int(self.precision.lstrip("abcdefghijklmnopqrstuvwxyz"))


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("ort-fp32", "onnx", "onnxruntime", "fp32", "convert", "host", True),
        Format("ort-int8", "onnx", "onnxruntime", "int8", "quantize", "host", True),
        Format("tflite-fp32", "tflite", "tflite", "fp32", "convert", "host", False),
        Format("tflite-fp16", "tflite", "tflite", "fp16", "convert", "host", False),
        Format("tflite-int8", "tflite", "tflite", "int8", "quantize", "host", False),
        # TensorRT engines are device-specific: the benchmark job builds them on the target from ONNX
        Format("trt-fp32", "engine", "tensorrt", "fp32", "bench", "device", True),
        Format("trt-fp16", "engine", "tensorrt", "fp16", "bench", "device", True),
        Format("trt-int8", "engine", "tensorrt", "int8", "bench", "device", True),
    )
}


#: not a deployable format: the symmetric int8 QDQ ONNX the quantization stage makes for trt-int8 engines
#: (`convert.tensorrt.int8_source: qdq`; `edgeopt.layout.TRT_QDQ`), which the device builds the engine from
TRT_QDQ_SOURCE = "trt-qdq"


def get(name: str, key: str = "format") -> Format:
    """The format called `name`; an unknown one is a one-line error naming `key` (the config key or flag)."""
    if name not in FORMATS:
        raise EdgeoptError(f"config: {key}: unknown format {name!r} (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def names(*, stage: str | None = None, runtime: str | None = None, built_on: str | None = None) -> list[str]:
    """Format names, in table order, filtered by stage, runtime and/or where they are built."""
    return [
        f.name
        for f in FORMATS.values()
        if (stage is None or f.stage == stage)
        and (runtime is None or f.runtime == runtime)
        and (built_on is None or f.built_on == built_on)
    ]


def runtime(name: str) -> str:
    """The harness runtime that runs format `name`."""
    return get(name, "bench.formats").runtime
