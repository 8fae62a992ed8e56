"""The layers of a deep autoencoder as a stack of shallow ones (greedy layer-wise pretraining).

Only torch lives here; :func:`aepipe.nets.pretrain_layerwise` trains the
stack with skorch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ._modules import AEOutput, LikelihoodHead, _activation


class LayerPair(NamedTuple):
    """One layer of a deep autoencoder and its mirror in the decoder.

    ``encoder`` maps the codes of the layer below (``n_inputs`` wide) to this
    layer's codes, ``decoder`` maps them back; ``n_code`` is how many of the
    encoder's outputs are the code (the posterior mean's half of a
    variational encoder's output layer).
    """

    encoder: nn.Linear
    encoder_activation: str | None
    decoder: nn.Linear
    decoder_activation: str | None
    n_code: int


def layer_pairs(module) -> list[LayerPair]:
    """The encoder/decoder layer pairs of an :class:`~aepipe.nn.AutoencoderModule`, input first.

    Pair ``k`` is the encoder's ``k``-th linear layer with the decoder layer
    that mirrors it: the first pair maps the input to the first hidden layer
    and back to the likelihood head's parameters (no activation there); the
    last maps the deepest hidden layer to the code and back.
    """
    encoder, decoder = module.encoder, module.decoder
    encoder_layers = [*encoder.linears, encoder.output]
    decoder_layers = [m for m in decoder.net if isinstance(m, nn.Linear)]
    if len(encoder_layers) != len(decoder_layers):
        raise ValueError(
            f"The encoder has {len(encoder_layers)} linear layers and the decoder "
            f"{len(decoder_layers)}; layer-wise pretraining needs a mirrored autoencoder."
        )
    depth = len(encoder_layers)
    pairs = []
    for k, (enc, dec) in enumerate(zip(encoder_layers, reversed(decoder_layers))):
        top = k == depth - 1
        pairs.append(LayerPair(
            encoder=enc,
            encoder_activation=(encoder.output_activation_name if top
                                else encoder.activation_name),
            decoder=dec,
            # The decoder's last layer emits the head's parameters, without activation.
            decoder_activation=None if k == 0 else encoder.activation_name,
            n_code=module.latent_dim if top else enc.out_features,
        ))
    return pairs


class ShallowAutoencoder(nn.Module):
    """One layer pair trained as an autoencoder of its own (shares the pair's weights).

    Speaks the language of :class:`~aepipe.nets.AutoencoderNet` (``head``,
    ``encode``, ``forward`` returning :class:`AEOutput`), so the skorch nets
    train it unchanged.

    Parameters
    ----------
    pair : LayerPair
    head : LikelihoodHead or None
        The likelihood of what this layer reconstructs: the deep model's own
        head for the first layer (mixed column types, missing values), else
        None for a unit-variance Gaussian over the codes of the layer below
        (a squared error).
    """

    def __init__(self, pair: LayerPair, head: LikelihoodHead | None = None):
        super().__init__()
        self.encoder_layer = pair.encoder
        self.decoder_layer = pair.decoder
        self.encoder_activation = _activation(pair.encoder_activation)
        self.decoder_activation = _activation(pair.decoder_activation)
        self.n_code = pair.n_code
        self.head = head if head is not None else LikelihoodHead(
            [("gaussian", 1)] * pair.encoder.in_features)

    def encode(self, x: torch.Tensor) -> AEOutput:
        code = self.encoder_activation(self.encoder_layer(x))[:, :self.n_code]
        return AEOutput(params=code, code=code)

    def forward(self, x: torch.Tensor) -> AEOutput:
        code = self.encode(x).code
        return AEOutput(self.decoder_activation(self.decoder_layer(code)), code)
