"""Models: every model plugs into the one trainer through :class:`ConditionalModel`."""

from cmmkit.models.base import ConditionalModel, ModelConfig
from cmmkit.models.cgan import CGAN, CGANConfig
from cmmkit.models.cmma import CMMA, CMMAConfig
from cmmkit.models.cvae import CVAE, VAE, CVAEConfig, VAEConfig
from cmmkit.models.direct import Direct, DirectConfig
from cmmkit.models.judge import Classifier, ClassifierConfig
from cmmkit.models.latent import LatentModel

__all__ = ["CGAN", "CGANConfig", "CMMA", "CMMAConfig", "CVAE", "CVAEConfig", "VAE", "VAEConfig", "Classifier",
           "ClassifierConfig", "Direct", "DirectConfig", "ConditionalModel", "LatentModel", "ModelConfig"]
