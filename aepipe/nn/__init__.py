"""Torch modules (encoders, decoders, likelihood heads). Imports torch."""

from ._batching import batched_inference, inference_batch_rows
from ._conv import ConvAutoencoderModule, ConvDecoder, ConvEncoder
from ._expand import OneHotExpander
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
from ._stacked import LayerPair, ShallowAutoencoder, layer_pairs

__all__ = [
    "ACTIVATIONS",
    "AEOutput",
    "AutoencoderModule",
    "ConvAutoencoderModule",
    "ConvDecoder",
    "ConvEncoder",
    "LayerPair",
    "LikelihoodHead",
    "MLPDecoder",
    "MLPEncoder",
    "OneHotExpander",
    "ShallowAutoencoder",
    "ShrinkageAutoencoderModule",
    "activation_derivative",
    "batched_inference",
    "gaussian_kl",
    "inference_batch_rows",
    "layer_pairs",
]
