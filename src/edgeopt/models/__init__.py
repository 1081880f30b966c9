"""Model registry (timm-style `create_model`) and the checkpoint format every stage shares."""

from edgeopt.models import cifar_resnet, mobilenet, resnet18, vgg  # noqa: F401  (registers models)
from edgeopt.models.external import load_weights, register_factory
from edgeopt.models.io import load_model, save_model
from edgeopt.models.registry import create_model, list_models, register_model
from edgeopt.models.stats import model_stats

__all__ = ["create_model", "list_models", "register_model", "load_model", "save_model", "model_stats",
           "register_factory", "load_weights"]
