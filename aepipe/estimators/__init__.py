"""Public scikit-learn estimators: the autoencoder family, the PCA baseline, Denoiser."""

from ._autoencoders import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from ._base import BaseDetector
from ._denoiser import Denoiser
from ._pca import PCADetector

__all__ = [
    "Autoencoder",
    "BaseDetector",
    "ContractiveAutoencoder",
    "Denoiser",
    "DenoisingAutoencoder",
    "PCADetector",
    "SparseAutoencoder",
    "VariationalAutoencoder",
]
