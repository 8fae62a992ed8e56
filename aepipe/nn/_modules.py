"""Torch modules: MLP encoders and decoders, the likelihood head, VAE pieces.

Only torch lives here; the training loop is skorch's (see :mod:`aepipe.nets`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

_LOG_2PI = math.log(2.0 * math.pi)


def activation_derivative(name: str, pre_activation: torch.Tensor) -> torch.Tensor:
    """Elementwise derivative of an activation at its pre-activation values."""
    a = pre_activation
    if name == "relu":
        return (a > 0).to(a.dtype)
    if name == "leaky_relu":
        return torch.where(a > 0, torch.ones_like(a), torch.full_like(a, 0.01))
    if name == "elu":
        return torch.where(a > 0, torch.ones_like(a), torch.exp(a))
    if name == "tanh":
        return 1.0 - torch.tanh(a) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1.0 - s)
    if name == "silu":
        s = torch.sigmoid(a)
        return s * (1.0 + a * (1.0 - s))
    if name == "gelu":
        cdf = 0.5 * (1.0 + torch.erf(a / math.sqrt(2.0)))
        pdf = torch.exp(-0.5 * a**2) / math.sqrt(2.0 * math.pi)
        return cdf + a * pdf
    if name == "identity":
        return torch.ones_like(a)
    raise ValueError(f"No derivative for activation {name!r}; use one of {sorted(ACTIVATIONS)}.")


def _activation(name: str | None) -> nn.Module:
    return nn.Identity() if name in (None, "identity") else ACTIVATIONS[name]()


class MLPEncoder(nn.Module):
    """Linear layers with activations, then a linear map to the code.

    Parameters
    ----------
    n_inputs : int
    hidden_sizes : sequence of int
    n_outputs : int
        Width of the last layer (the latent size, or twice it for a VAE).
    activation : str
    dropout : float
    output_activation : str or None
        Applied to the code (e.g. ``"sigmoid"`` for a KL-sparse code).
    """

    def __init__(self, n_inputs, hidden_sizes, n_outputs, activation="relu", dropout=0.0,
                 output_activation=None):
        super().__init__()
        sizes = [n_inputs, *hidden_sizes]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = nn.Linear(sizes[-1], n_outputs)
        self.activation_name = activation
        self.output_activation_name = output_activation or "identity"
        self.activation = _activation(activation)
        self.output_activation = _activation(output_activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Identity modules are skipped: a module call costs microseconds on every step.
        dropout = not isinstance(self.dropout, nn.Identity)
        for linear in self.linears:
            x = self.activation(linear(x))
            if dropout:
                x = self.dropout(x)
        x = self.output(x)
        if self.output_activation_name != "identity":
            x = self.output_activation(x)
        return x

    def jacobian_frobenius_sq(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ||dh/dx||_F^2 per sample, shape (n_samples,).

        For h = s_L(W_L s_{L-1}(... s_1(W_1 x))) the Jacobian is
        D_L W_L ... D_1 W_1 with D_k = diag(s_k'(a_k)). We accumulate it from
        the code side (the narrowest), so the cost is O(B * latent * sum of
        layer products), with no finite differences and no per-output
        backward passes. Dropout is left out (the penalty is on the mean map).
        """
        pre_activations = []
        h = x
        for linear in self.linears:
            a = linear(h)
            pre_activations.append(a)
            h = self.activation(a)
        a_out = self.output(h)
        # (B, latent, width) running product, starting from D_L W_L.
        jac = activation_derivative(self.output_activation_name, a_out).unsqueeze(-1) * (
            self.output.weight.unsqueeze(0)
        )
        for linear, a in zip(reversed(self.linears), reversed(pre_activations)):
            jac = (jac * activation_derivative(self.activation_name, a).unsqueeze(1)) @ (
                linear.weight
            )
        return jac.pow(2).sum(dim=(1, 2))


class MLPDecoder(nn.Module):
    """Linear layers with activations from the code to the likelihood parameters."""

    def __init__(self, n_latent, hidden_sizes, n_outputs, activation="relu", dropout=0.0):
        super().__init__()
        sizes = [n_latent, *hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), _activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class LikelihoodHead(nn.Module):
    """p(x|h) over a table's columns: Gaussian, Bernoulli and categorical parts.

    The decoder emits one raw parameter per encoded position: the mean of a
    Gaussian column, the logit of a Bernoulli one, the logits of a categorical
    one-hot group. ``nll`` returns the negative log-likelihood per *original*
    column, shape (n_samples, n_columns).

    Parameters
    ----------
    widths : list of (kind, width)
        One entry per original column, in order (see ``TabularLayout.widths``).
    gaussian_variance : {"fixed", "learned"}
        ``"fixed"``: unit variance in standardised units, so the NLL is half
        the squared error plus a constant (MSE is this special case).
        ``"learned"``: one learned variance per Gaussian column.
    """

    def __init__(self, widths, gaussian_variance="fixed"):
        super().__init__()
        kinds = [kind for kind, _ in widths]
        starts, position = [], 0
        for _, width in widths:
            starts.append(position)
            position += width
        self.n_encoded = position
        self.n_columns = len(widths)
        self.all_gaussian = all(kind == "gaussian" for kind in kinds)
        gaussian_cols = [j for j, k in enumerate(kinds) if k == "gaussian"]
        bernoulli_cols = [j for j, k in enumerate(kinds) if k == "bernoulli"]
        self.register_buffer("gaussian_cols", torch.tensor(gaussian_cols, dtype=torch.long))
        self.register_buffer(
            "gaussian_pos", torch.tensor([starts[j] for j in gaussian_cols], dtype=torch.long)
        )
        self.register_buffer("bernoulli_cols", torch.tensor(bernoulli_cols, dtype=torch.long))
        self.register_buffer(
            "bernoulli_pos", torch.tensor([starts[j] for j in bernoulli_cols], dtype=torch.long)
        )
        self.categorical_groups = [
            (j, starts[j], starts[j] + width)
            for j, (kind, width) in enumerate(widths) if kind == "categorical"
        ]
        # Missing values (NaN in the encoded input): which position starts each
        # column, and the neutral value a missing entry is read as -- the training
        # mean (0 in standardised units), p=0.5, a uniform one-hot group.
        fill = torch.zeros(position)
        for (kind, width), start in zip(widths, starts):
            if kind == "bernoulli":
                fill[start] = 0.5
            elif kind == "categorical":
                fill[start:start + width] = 1.0 / width
        self.register_buffer("column_starts", torch.tensor(starts, dtype=torch.long),
                             persistent=False)
        self.register_buffer("fill_value", fill, persistent=False)
        # A category unseen at fit is encoded as -1 over its one-hot group (aepipe's
        # handle_unknown="score"): read as unknown by the network, scored by the NLL.
        categorical = torch.zeros(position, dtype=torch.bool)
        for _, start, stop in self.categorical_groups:
            categorical[start:stop] = True
        self.register_buffer("categorical_mask", categorical, persistent=False)
        self.gaussian_variance = gaussian_variance
        if gaussian_variance == "learned":
            self.log_var = nn.Parameter(torch.zeros(len(gaussian_cols)))
        else:
            self.register_parameter("log_var", None)

    def _gaussian_nll(self, mean, target):
        residual_sq = (target - mean) ** 2
        if self.log_var is None:
            return 0.5 * (residual_sq + _LOG_2PI)
        log_var = self.log_var.clamp(-12.0, 12.0)
        return 0.5 * (residual_sq * torch.exp(-log_var) + log_var + _LOG_2PI)

    def observed(self, target: torch.Tensor) -> torch.Tensor:
        """Boolean (n_samples, n_columns): columns whose entry is not missing (NaN)."""
        return ~torch.isnan(target[:, self.column_starts])

    def fill_missing(self, x: torch.Tensor) -> torch.Tensor:
        """x with missing (NaN) entries replaced by the neutral ``fill_value``.

        So is a categorical group holding -1 (a category unseen at fit, with
        ``handle_unknown="score"``): the network reads it as unknown.
        """
        unobserved = torch.isnan(x)
        if self.categorical_groups:
            unobserved = unobserved | ((x < 0) & self.categorical_mask)
        return torch.where(unobserved, self.fill_value.to(x.dtype), x)

    def nll(self, params: torch.Tensor, target: torch.Tensor,
            observed: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood per original column, (n_samples, n_columns).

        ``observed`` (boolean, (n_samples, n_columns)) excludes missing entries:
        their target may be NaN and their NLL is 0, so sums run over the
        observed entries only.

        A categorical group whose target is -1 (a category unseen at fit)
        scores as maximally surprising: the NLL of the least probable known
        category, ``logsumexp(logits) - min(logits)``.
        """
        if observed is not None:
            out = self.nll(params, torch.where(torch.isnan(target),
                                               self.fill_value.to(target.dtype), target))
            return torch.where(observed, out, torch.zeros((), dtype=out.dtype, device=out.device))
        if self.all_gaussian:
            return self._gaussian_nll(params, target)
        out = params.new_zeros(params.shape[0], self.n_columns)
        if len(self.gaussian_pos):
            out[:, self.gaussian_cols] = self._gaussian_nll(
                params[:, self.gaussian_pos], target[:, self.gaussian_pos]
            )
        if len(self.bernoulli_pos):
            out[:, self.bernoulli_cols] = F.binary_cross_entropy_with_logits(
                params[:, self.bernoulli_pos], target[:, self.bernoulli_pos], reduction="none"
            )
        for column, start, stop in self.categorical_groups:
            logits = params[:, start:stop]
            normaliser = torch.logsumexp(logits, dim=1)
            nll = normaliser - (logits * target[:, start:stop]).sum(1)
            unknown = target[:, start] < 0
            if bool(unknown.any()):
                nll = torch.where(unknown, normaliser - logits.min(dim=1).values, nll)
            out[:, column] = nll
        return out

    def mean_record_nll(self, params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``nll(params, target).sum(dim=1).mean()``: the training loss, a scalar.

        With unit-variance Gaussian columns only it is half the mean squared
        error summed over columns plus a constant, computed by one fused
        kernel instead of several elementwise ones (per-step cost matters
        for small networks).
        """
        if self.all_gaussian and self.log_var is None:
            squared = F.mse_loss(params, target, reduction="sum")
            return squared * (0.5 / len(params)) + 0.5 * _LOG_2PI * self.n_columns
        return self.nll(params, target).sum(dim=1).mean()

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """Mean of p(x|h) in the encoded space (probabilities for discrete parts)."""
        if self.all_gaussian:
            return params
        out = params.clone()
        if len(self.bernoulli_pos):
            out[:, self.bernoulli_pos] = torch.sigmoid(params[:, self.bernoulli_pos])
        for _, start, stop in self.categorical_groups:
            out[:, start:stop] = torch.softmax(params[:, start:stop], dim=1)
        return out


class AEOutput(NamedTuple):
    """What an autoencoder module returns: decoder parameters, code, extras."""

    params: torch.Tensor
    code: torch.Tensor
    mu: torch.Tensor | None = None
    log_var: torch.Tensor | None = None


class LatentMixin:
    """What every aepipe autoencoder module shares around its code.

    ``latent`` turns the encoder's output into an :class:`AEOutput`: the code
    itself, or for a variational module the mean and log-variance of a
    Gaussian q(z|x) (the code is the mean). ``forward`` decodes the code, or in
    training a reparameterised sample of it. Subclasses define ``encode``
    (input -> AEOutput via ``latent``), ``decoder`` and ``variational``.
    """

    def latent(self, out: torch.Tensor) -> AEOutput:
        if not self.variational:
            return AEOutput(params=out, code=out)
        mu, log_var = out.chunk(2, dim=1)
        return AEOutput(params=out, code=mu, mu=mu, log_var=log_var.clamp(-12.0, 12.0))

    def forward(self, x: torch.Tensor) -> AEOutput:
        encoded = self.encode(x)
        code = encoded.code
        if self.variational and self.training:
            code = self.sample_latent(encoded.mu, encoded.log_var)
        elif self.training and getattr(self, "encoder_noise", 0.0) > 0:
            # A stochastic encoder p(h|x) = N(f(x), encoder_noise^2 I), sampled in training.
            code = code + self.encoder_noise * torch.randn_like(code)
        return AEOutput(self.decoder(code), code, encoded.mu, encoded.log_var)

    @staticmethod
    def sample_latent(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """Reparameterisation: z = mu + sigma * eps, eps ~ N(0, I)."""
        return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)


class AutoencoderModule(LatentMixin, nn.Module):
    """Encoder, decoder and likelihood head of a (possibly variational) autoencoder.

    Parameters
    ----------
    widths : list of (kind, width)
        Column layout of the input (see :class:`LikelihoodHead`).
    hidden_sizes : sequence of int
        Encoder hidden widths; the decoder mirrors them.
    latent_dim : int
    activation : str
    dropout : float
    latent_activation : str or None
    variational : bool
        If true the encoder outputs the mean and log-variance of a Gaussian
        q(z|x); training decodes a reparameterised sample, evaluation the mean.
    gaussian_variance : {"fixed", "learned"}
    encoder_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the code in training (a
        stochastic encoder p(h|x) = N(f(x), encoder_noise^2 I)); evaluation
        decodes the mean code. Not used by a variational module.
    """

    def __init__(self, widths, hidden_sizes=(64,), latent_dim=8, activation="relu", dropout=0.0,
                 latent_activation=None, variational=False, gaussian_variance="fixed",
                 encoder_noise=0.0):
        super().__init__()
        self.head = LikelihoodHead(widths, gaussian_variance=gaussian_variance)
        n_inputs = self.head.n_encoded
        self.variational = variational
        self.encoder_noise = float(encoder_noise)
        self.latent_dim = latent_dim
        self.encoder = MLPEncoder(
            n_inputs, hidden_sizes, 2 * latent_dim if variational else latent_dim,
            activation=activation, dropout=dropout,
            output_activation=None if variational else latent_activation,
        )
        self.decoder = MLPDecoder(
            latent_dim, tuple(reversed(hidden_sizes)), n_inputs, activation=activation,
            dropout=dropout,
        )

    def encode(self, x: torch.Tensor) -> AEOutput:
        return self.latent(self.encoder(x))


def gaussian_kl(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(log_var)) || N(0, I)) per sample."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)
