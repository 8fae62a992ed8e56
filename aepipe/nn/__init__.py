"""Torch modules (encoders, decoders, likelihood heads). Imports torch."""

from ._batching import inference_batch_rows
from ._conv import ConvAutoencoderModule, ConvDecoder, ConvEncoder
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
from ._residual import ShrinkageAutoencoderModule

__all__ = [
    "ACTIVATIONS",
    "AEOutput",
    "AutoencoderModule",
    "ConvAutoencoderModule",
    "ConvDecoder",
    "ConvEncoder",
    "LikelihoodHead",
    "MLPDecoder",
    "MLPEncoder",
    "ShrinkageAutoencoderModule",
    "activation_derivative",
    "gaussian_kl",
    "inference_batch_rows",
]
