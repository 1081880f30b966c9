"""Name the operator a runtime or converter rejected, from its error text.

Runtimes report a missing operator deep inside long messages (ONNX Runtime's
`NOT_IMPLEMENTED`, TFLite's unresolved custom ops, litert-torch's missing lowerings, TensorRT's
ONNX parser). These patterns pull out the op so the user gets one line: which op, which runtime.
Numpy-free and import-free, so it runs on devices too.
"""

from __future__ import annotations

import re

#: (runtime, pattern, reason): group "op" is the operator name
PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        "onnxruntime",
        re.compile(
            r"Could not find an implementation for (?P<op>[\w.:]+)\(\d+\) node with name '(?P<node>[^']*)'"
        ),
        "no kernel for it (NOT_IMPLEMENTED)",
    ),
    (
        "onnxruntime",
        re.compile(r"(?:Fatal error: )?(?P<op>[\w.]*:?[\w.]+)\(-?\d+\) is not a registered function/op"),
        "not a registered op",
    ),
    ("tflite", re.compile(r"Encountered unresolved custom op: (?P<op>[\w.:-]+)"), "unresolved custom op"),
    (
        "tflite",
        re.compile(r"Didn't find op for builtin opcode '(?P<op>\w+)' version '\d+'"),
        "builtin op missing in this interpreter",
    ),
    ("litert-torch", re.compile(r"Lowering not found: (?P<op>[\w.:]+)"), "no lowering to TFLite"),
    (
        "onnx-exporter",
        re.compile(r"(?:operator|namespace) '?(?P<op>[A-Za-z_][\w.]*::[\w.]+)'?"),
        "not supported by torch.onnx.export",
    ),
    (
        "tensorrt",
        re.compile(r"getPluginCreator could not find plugin:? (?P<op>[\w.:-]+)"),
        "no importer or plugin",
    ),
    ("tensorrt", re.compile(r"No importer registered for op: (?P<op>[\w.:-]+)"), "no importer or plugin"),
    (
        "tensorrt",
        re.compile(r"While parsing node number \d+ \[(?P<op>[\w.:-]+)(?: ->[^\]]*)?\]"),
        "the ONNX parser rejected it",
    ),
]


def unsupported_op(runtime: str, message: str) -> tuple[str, str] | None:
    """(op, reason) when `message` says `runtime` lacks an operator, else None.

    Patterns are tried in order (the most specific first). TensorRT also logs "No importer
    registered for op" for ops it then finds as plugins, so callers only ask after a failure.
    """
    for rt, pattern, reason in PATTERNS:
        if rt == runtime:
            m = pattern.search(message)
            if m:
                return m.group("op"), reason
    return None


def unsupported_op_message(runtime: str, message: str, where: str = "") -> str | None:
    """A one-line error naming the op and the runtime, or None when `message` is about something else."""
    hit = unsupported_op(runtime, message)
    if hit is None:
        return None
    op, reason = hit
    prefix = f"{where}: " if where else ""
    return f"{prefix}{runtime} does not support op '{op}' ({reason})"
