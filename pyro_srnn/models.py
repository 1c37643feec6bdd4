"""Every sequence model the package trains, by the name a configuration gives it (``SRNNConfig.model``).

A third model is a :class:`pyro_srnn.sequence_model.SequenceModel` subclass in a file of its own, added to
MODELS here, with its name in ``config.MODELS`` and its own fields and training objectives in
``config.MODEL_FIELDS`` and ``config.MODEL_ELBOS``; training, evaluation, sampling, checkpoints, reports and
sweeps then take it as they are.
"""
from __future__ import annotations

from .config import SRNNConfig
from .model import SRNN
from .sequence_model import SequenceModel
from .tsbn import TSBN

MODELS = {cls.name: cls for cls in (SRNN, TSBN)}


def model_class(config: SRNNConfig) -> type:
    return MODELS[config.model]


def build_model(config: SRNNConfig) -> SequenceModel:
    """The model ``config`` describes, with fresh parameters (seeded by the caller)."""
    return model_class(config)(config)
