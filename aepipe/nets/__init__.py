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
from ._robust import EnsembleAutoencoderModule, TrimmedAutoencoderNet

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
]
