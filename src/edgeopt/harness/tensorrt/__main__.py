"""`python -m edgeopt.harness.tensorrt build|parse|time ...` on the device."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeopt.harness.tensorrt.build import build_engine, load_calibration
from edgeopt.harness.tensorrt.errors import TensorRTBuildError, TensorRTUnavailable
from edgeopt.harness.tensorrt.files import write_text
from edgeopt.harness.tensorrt.log import parse_trtexec_log
from edgeopt.harness.tensorrt.options import PRECISIONS, BuildOptions


def _shape_arg(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CxHxW, e.g. 3x32x32") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m edgeopt.harness.tensorrt", description=__doc__.splitlines()[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "build", help="build an engine (trtexec, else the Python API) and print/record the result"
    )
    b.add_argument("--onnx", required=True)
    b.add_argument("--engine", required=True)
    b.add_argument("--precision", choices=PRECISIONS, default="fp16")
    b.add_argument("--input-name", default="input")
    b.add_argument("--input-shape", type=_shape_arg, default=(3, 32, 32), help="per image, CxHxW")
    b.add_argument("--static", action="store_true", help="the ONNX batch is fixed (no min/opt/max profile)")
    b.add_argument("--min-batch", type=int, default=1)
    b.add_argument("--opt-batch", type=int, default=1)
    b.add_argument("--max-batch", type=int, default=64)
    b.add_argument("--workspace-mib", type=int, default=1024)
    b.add_argument("--calib", help="int8 calibration cache (read if present, written after calibrating)")
    b.add_argument(
        "--calib-data", help="int8 calibration images: calib.npz (with --mean/--std) or a float32 NCHW .npy"
    )
    b.add_argument("--mean", type=_floats, help="per-channel mean for calib.npz, e.g. 0.49,0.48,0.45")
    b.add_argument("--std", type=_floats, help="per-channel std for calib.npz")
    b.add_argument("--timing-cache")
    b.add_argument("--builder-optimization-level", type=int)
    b.add_argument("--no-benchmark", action="store_true", help="build only (--skipInference)")
    b.add_argument("--trtexec", help="path of trtexec (default: PATH, then /usr/src/tensorrt/bin)")
    b.add_argument("--prefer", choices=("trtexec", "python"), default="trtexec")
    b.add_argument("--log", help="write the build log here")
    b.add_argument("--json", help="write the parsed result here")
    b.add_argument("--extra", action="append", default=[], help="extra trtexec flag (repeatable)")
    q = sub.add_parser("parse", help="parse a trtexec log into JSON")
    q.add_argument("log")
    args = p.parse_args(argv)
    if args.cmd == "parse":
        print(json.dumps(parse_trtexec_log(Path(args.log).read_text(errors="replace")), indent=2))
        return 0
    opts = BuildOptions(
        precision=args.precision,
        input_name=args.input_name,
        input_shape=args.input_shape,
        dynamic_batch=not args.static,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
        workspace_mib=args.workspace_mib,
        calibration_cache=args.calib,
        timing_cache=args.timing_cache,
        builder_optimization_level=args.builder_optimization_level,
        benchmark=not args.no_benchmark,
        extra_flags=args.extra,
    )
    calib = load_calibration(args.calib_data, args.mean, args.std) if args.calib_data else None
    try:
        res = build_engine(args.onnx, args.engine, opts, args.log, args.trtexec, calib, args.prefer)
    except (TensorRTUnavailable, TensorRTBuildError) as exc:
        print(f"tensorrt: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(res, indent=2, default=str)
    if args.json:
        write_text(Path(args.json), text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
