"""Torch modules (encoders, decoders, likelihood heads). Imports torch."""

from ._modules import (
    ACTIVATIONS,
    AEOutput,
    AutoencoderModule,
    LikelihoodHead,
    MLPDecoder,
    MLPEncoder,
    activation_derivative,
    gaussian_kl,
)

__all__ = [
    "ACTIVATIONS",
    "AEOutput",
    "AutoencoderModule",
    "LikelihoodHead",
    "MLPDecoder",
    "MLPEncoder",
    "activation_derivative",
    "gaussian_kl",
]
