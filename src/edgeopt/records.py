"""The metrics files every stage writes, as typed records: each key is defined here once.

Producers build a record and write it with `write_record` (atomically, flat JSON: the declared fields,
then the stage's own details from `extra`, then `provenance`); the report reads files back with
`read_record` and uses the fields by name, so a renamed key fails loudly (a one-line error naming the
file and the key) instead of becoming an empty column. Torch-free (the report and planner import it).
The CSV tables have their columns here too (`SENSITIVITY_COLUMNS`, `QAT_SWEEP_COLUMNS`).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from edgeopt.atomic import write_json
from edgeopt.errors import EdgeoptError

R = TypeVar("R", bound="Record")


@dataclass(kw_only=True)
class Record:
    """Base of every metrics record: declared fields, `extra` details written beside them, provenance."""

    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: fields that hold a list of nested records, by their record type
    NESTED: ClassVar[dict[str, type[Record]]] = {}

    def to_json(self) -> dict[str, Any]:
        declared = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "provenance")}
        clash = sorted(set(declared) & set(self.extra))
        if clash:
            raise ValueError(f"{type(self).__name__}: extra key {clash[0]!r} is a declared field")
        for name in self.NESTED:
            declared[name] = [r.to_json() for r in declared[name]]
        out = {**declared, **self.extra}
        if self.provenance:
            out["provenance"] = self.provenance
        return out

    @classmethod
    def from_json(cls: type[R], obj: dict[str, Any], source: str | Path) -> R:
        """The record in `obj` (read from `source`); a missing required key is a one-line EdgeoptError."""
        if not isinstance(obj, dict):
            raise EdgeoptError(f"{source}: a {cls.__name__} must be a JSON object")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("extra", "provenance"):
                continue
            if f.name in obj:
                value = obj[f.name]
                if f.name in cls.NESTED:
                    value = [cls.NESTED[f.name].from_json(v, source) for v in value or []]
                kwargs[f.name] = value
            elif f.default is MISSING and f.default_factory is MISSING:
                raise EdgeoptError(f"{source}: {cls.__name__} lacks key {f.name!r}")
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(**kwargs, extra=extra, provenance=obj.get("provenance") or {})


def write_record(path: str | Path, record: Record) -> dict[str, Any]:
    """Write `record` as flat JSON, atomically; return what was written."""
    obj = record.to_json()
    write_json(path, obj)
    return obj


def read_record(path: str | Path, cls: type[R]) -> R:
    """Read a metrics file as record type `cls`; unreadable or incomplete files are one-line errors."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgeoptError(f"{path}: not a readable metrics JSON ({exc})") from None
    return cls.from_json(obj, path)


@dataclass(kw_only=True)
class ModelMetrics(Record):
    """`layout.MODEL_METRICS`: a trained, pruned or thinner model measured in PyTorch on the test split."""

    model: str
    variant: str
    stage: str  # train, prune, train_width
    accuracy: float
    loss: float
    macs: int
    params: int
    nonzero_params: int
    weight_sparsity: float
    size_bytes: int | None = None  # of model.pt where the producer records it


@dataclass(kw_only=True)
class DeployMetrics(Record):
    """`layout.DEPLOY_SIDECAR` (and the ONNX export's): one artifact measured in its own runtime on the host."""

    model: str
    variant: str
    format: str
    runtime: str
    precision: str
    path: str
    size_bytes: int
    accuracy: float
    images: int
    parity: dict[str, Any]
    deployable: bool
    simulated: bool
    bits_w: int | None = None
    bits_a: int | None = None


@dataclass(kw_only=True)
class BenchBatch(Record):
    """One batch size of a benchmark: latency statistics in ms (`mean`, `p50`, `p90`, `p99`, ...)."""

    batch_size: int
    latency_ms: dict[str, float]
    throughput_ips: float | None
    energy: dict[str, Any] | None = None  # power.PowerMonitor.stop(): mean_power_w, energy_j, energy_per_image_mj

    @property
    def energy_per_image_mj(self) -> float | None:
        return (self.energy or {}).get("energy_per_image_mj")

    @property
    def mean_power_w(self) -> float | None:
        return (self.energy or {}).get("mean_power_w")


@dataclass(kw_only=True)
class BenchResult(Record):
    """`layout.BENCH_RESULT`: one artifact measured on one device, one `BenchBatch` per batch size."""

    NESTED: ClassVar[dict[str, type[Record]]] = {"batches": BenchBatch}

    device: str
    model: str
    variant: str
    format: str
    runtime: str
    precision: str
    artifact: str
    size_bytes: int
    accuracy: float | None  # None when timed on random inputs (a model file without matching test data)
    accuracy_host: float | None
    batches: list[BenchBatch]
    peak_rss_bytes: int | None = None
    providers: list[str] | None = None  # ONNX Runtime execution providers the session used


@dataclass(kw_only=True)
class EngineInfo(Record):
    """`layout.ENGINE_SIDECAR`: a TensorRT engine copied back from the board that built it, with what it only
    runs with (TensorRT version, L4T/JetPack, GPU)."""

    device: str
    engine: str
    engine_bytes: int
    tensorrt_version: str | None
    l4t: str | None = None
    jetpack: str | None = None
    gpu: Any = None
    board: Any = None
    build: dict[str, Any] = field(default_factory=dict)  # builder, precision, options, build_seconds, command


@dataclass(kw_only=True)
class FileBenchResult(Record):
    """`edgeopt bench FILE --out`: a model file the user brought, measured on one device (not a workflow
    artifact: no model or variant; random inputs unless a data cache was given)."""

    NESTED: ClassVar[dict[str, type[Record]]] = {"batches": BenchBatch}

    file: str
    device: str
    format: str
    runtime: str
    precision: str | None  # of a TensorRT engine built from the file; None: the file runs as it is
    data: str | None
    artifact: str
    size_bytes: int
    accuracy: float | None
    batches: list[BenchBatch]
    peak_rss_bytes: int | None = None
    providers: list[str] | None = None


@dataclass(kw_only=True)
class QatResult(Record):
    """`layout.QAT_RESULT`: one weight/activation bit pair after quantization-aware training (simulated)."""

    model: str
    variant: str
    stage: str
    quantizer: str
    bits_w: int
    bits_a: int
    accuracy: float
    fp32_accuracy: float
    delta: float
    accuracy_before_finetune: float
    deployable: bool
    simulated: bool
    epochs: int
    train_images: int
    test_images: int


@dataclass(kw_only=True)
class RetrainResult(Record):
    """`layout.RETRAIN_RESULT`: the cost and outcome of retraining one model with one setting on a device."""

    device: str
    model: str
    variant: str
    framework: str
    setting: str
    freeze: int
    precision: str
    batch_size: int
    frozen_layers: int
    accuracy: float
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    images_per_second: float | None = None
    seconds_per_epoch: float | None = None
    peak_rss_bytes: int | None = None


#: columns of `layout.SENSITIVITY_TABLE` (one row per layer group and ratio)
SENSITIVITY_COLUMNS = ("layer", "ratio", "channels", "kept", "accuracy", "loss", "macs", "params", "members")
#: columns of `layout.QAT_SWEEP` (one row per bit pair): fields of `QatResult`
QAT_SWEEP_COLUMNS = (
    "bits_w", "bits_a", "accuracy", "fp32_accuracy", "delta", "accuracy_before_finetune", "deployable", "simulated",
    "epochs", "train_images", "test_images",
)  # fmt: skip
