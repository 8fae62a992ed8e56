"""skorch ``NeuralNet`` subclasses: losses, corruption, regularisers. Imports torch."""

from ._build import build_net
from ._nets import (
    AutoencoderNet,
    ContractiveNet,
    DenoisingNet,
    EpochProgressBar,
    NegativeLogLikelihood,
    SparseNet,
    TensorBatchIterator,
    TensorDataset,
    VariationalNet,
)
from ._pretrain import pretrain_layerwise
from ._robust import EnsembleAutoencoderModule, TrimmedAutoencoderNet
from ._stream import continue_training, rescale_gaussian_inputs

__all__ = [
    "build_net",
    "AutoencoderNet",
    "ContractiveNet",
    "DenoisingNet",
    "EnsembleAutoencoderModule",
    "EpochProgressBar",
    "NegativeLogLikelihood",
    "SparseNet",
    "TensorBatchIterator",
    "TensorDataset",
    "TrimmedAutoencoderNet",
    "VariationalNet",
    "continue_training",
    "pretrain_layerwise",
    "rescale_gaussian_inputs",
]
