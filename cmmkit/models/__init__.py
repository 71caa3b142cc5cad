"""Models: every model plugs into the one trainer through :class:`ConditionalModel`."""

from cmmkit.models.base import ConditionalModel, ModelConfig
from cmmkit.models.cmma import CMMA, CMMAConfig

__all__ = ["CMMA", "CMMAConfig", "ConditionalModel", "ModelConfig"]
