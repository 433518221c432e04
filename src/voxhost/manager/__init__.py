"""The model manager: the only owner of models and their worker processes."""

from voxhost.manager.registry import ModelRegistry, ModelSpec
from voxhost.manager.supervisor import ModelManager, ModelStatus

__all__ = ["ModelManager", "ModelRegistry", "ModelSpec", "ModelStatus"]
