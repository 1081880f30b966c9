"""Training: GPU-resident data, the shared fit/evaluate loop, and the baseline-training stage."""

from edgeopt.train.device_data import DeviceData
from edgeopt.train.loop import FitResult, TrainSettings, evaluate, fit, resolve_device

__all__ = ["DeviceData", "FitResult", "TrainSettings", "evaluate", "fit", "resolve_device"]
