"""skorch nets (losses, corruption, regularisers) and the one training path. Imports torch."""

from ._build import build_net
from ._divergence import DivergenceGuard, divergence_guard
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
from ._robust import DiscreteMarginalNLL, EnsembleAutoencoderModule, TrimmedAutoencoderNet
from ._stream import continue_training, rescale_gaussian_inputs
from ._training import (
    fit_net,
    member_seed,
    n_validation,
    resolve_device,
    validation_split,
)

__all__ = [
    "build_net",
    "AutoencoderNet",
    "ContractiveNet",
    "DenoisingNet",
    "DiscreteMarginalNLL",
    "DivergenceGuard",
    "EnsembleAutoencoderModule",
    "EpochProgressBar",
    "NegativeLogLikelihood",
    "SparseNet",
    "TensorBatchIterator",
    "TensorDataset",
    "TrimmedAutoencoderNet",
    "VariationalNet",
    "continue_training",
    "divergence_guard",
    "fit_net",
    "member_seed",
    "n_validation",
    "pretrain_layerwise",
    "rescale_gaussian_inputs",
    "resolve_device",
    "validation_split",
]
