"""Public scikit-learn estimators: the autoencoder family, the PCA baseline, Denoiser."""

from ._autoencoders import (
    Autoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    SparseAutoencoder,
    VariationalAutoencoder,
)
from ._base import BaseDetector
from ._default import make_default_detector
from ._denoiser import Denoiser
from ._ensemble import AutoencoderEnsemble
from ._pca import PCADetector
from ._plot import plot_codes

__all__ = [
    "Autoencoder",
    "AutoencoderEnsemble",
    "BaseDetector",
    "ContractiveAutoencoder",
    "Denoiser",
    "DenoisingAutoencoder",
    "PCADetector",
    "SparseAutoencoder",
    "VariationalAutoencoder",
    "make_default_detector",
    "plot_codes",
]
