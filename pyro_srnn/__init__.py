"""The SRNN in Pyro: config, networks, model and guide, batching, training, evaluation, sampling."""
from .config import SRNNConfig
from .model import SRNN, Batch

__all__ = ["SRNNConfig", "SRNN", "Batch"]
