"""skorch ``NeuralNet`` subclasses: losses, corruption, regularisers. Imports torch."""

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

__all__ = [
    "AutoencoderNet",
    "ContractiveNet",
    "DenoisingNet",
    "EpochProgressBar",
    "NegativeLogLikelihood",
    "SparseNet",
    "TensorBatchIterator",
    "TensorDataset",
    "VariationalNet",
]
