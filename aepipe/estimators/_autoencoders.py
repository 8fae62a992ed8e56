"""The autoencoder family as scikit-learn estimators owning a skorch net."""

from __future__ import annotations

import logging
import os
from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_is_fitted

from .._compat import Interval, StrOptions, _fit_context
from .._random import resolve_seed, torch_seeded
from ..exceptions import TrainingDivergedError
from ._base import BaseDetector
from ._sizes import HIDDEN, LATENT, resolve_width, resolve_widths
from ._stream import StreamingMixin, blend

logger = logging.getLogger(__name__)

_ACTIVATIONS = {"relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid"}


def one_hot_expander(layout, device):
    """The batch-wise one-hot expansion of categories encoded by index; None if there are none."""
    plan = layout.expansion_plan()
    if plan is None:
        return None
    from ..nn import OneHotExpander

    return OneHotExpander(plan, device)


def resolve_device(device: str) -> str:
    """:func:`aepipe.nets.resolve_device`, importable without torch (aepipe._persistence)."""
    from ..nets import resolve_device as resolve

    return resolve(device)


class Autoencoder(StreamingMixin, BaseDetector):
    """Undercomplete MLP autoencoder for anomaly detection and denoising.

    The decoder defines p(x|h) per column (Gaussian for real columns, Bernoulli
    for booleans, categorical for categories) and is trained by its negative
    log-likelihood; that NLL is the anomaly score, per record and per column.

    A categorical column of more than 64 categories is stored as one number
    per record (the category's index) and expanded to its one-hot group a
    batch at a time, so memory grows with the batch, not with the number of
    categories.

    Parameters
    ----------
    hidden_sizes : tuple of int or "auto", default="auto"
        Encoder hidden widths, integers >= 1 (the decoder mirrors them).
        ``"auto"``: one layer of ``clip(2 * n_inputs, 16, 256)`` units, where
        ``n_inputs`` counts one per real or boolean column and per one-hot
        position, and ``ceil(log2(n_categories))`` for a column of more than
        64 categories.
    latent_dim : int or "auto", default="auto"
        Size of the code. ``"auto"``: ``clip(n_inputs // 2, 1, 32)``.
    activation : {"relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid"}, default="relu"
    dropout : float, default=0.0
    gaussian_variance : {"fixed", "learned"}, default="fixed"
        ``"fixed"``: unit variance in standardised units (the NLL is half the
        squared error plus a constant). ``"learned"``: one variance per column.
    feature_types : dict or None, default=None
        Overrides the kind inferred from dtypes, ``{column: "gaussian" |
        "bernoulli" | "categorical"}`` (integer keys for arrays). By default
        bool columns are Bernoulli, category/object/string columns categorical
        and numeric columns Gaussian; object columns holding only numbers
        (``decimal.Decimal`` included) are Gaussian. Dates and times, cells
        holding lists, dicts, sets or tuples, duplicated column names, and
        tuple or MultiIndex names in mixed tables raise a
        :class:`~aepipe.exceptions.DataValidationError` naming the column and
        row: convert dates to numbers (a timestamp, the day of year) or drop
        them.
    standardize : bool, default=True
        Centre and scale Gaussian columns with training statistics inside the
        model (reconstructions come back in the original units).
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
    batch_size : int, default=128
    max_epochs : int, default=100
    early_stopping : bool, default=True
        Stop when the validation loss has not improved for ``patience``
        epochs, and keep the best weights. Needs at least 20 rows.
    validation_fraction : float, default=0.1
    patience : int, default=10
    contamination : "auto" or float in (0, 0.5], default="auto"
        Share of outliers in the training data, scikit-learn's shorthand for
        the alarm limit when ``threshold`` is None: a float ``c`` is
        ``threshold=ContaminationThreshold(contamination=c)`` (``offset_`` is
        the ``100 * c`` percentile of the training ``score_samples``, as in
        scikit-learn); ``"auto"`` assumes no rate and is
        ``threshold=TukeyFenceThreshold()``: anomaly scores above Tukey's
        boxplot fence of the training scores, Q3 + 1.5 * IQR, are alarms.
    threshold : str, threshold object or None, default=None
        The alarm limit, fitted on the training anomaly scores: a name of
        :func:`aepipe.thresholds.make_threshold` (``"pot"``, ``"spot"``,
        ``"best_f1"``, ``"control_chart"``, ...) or an instance of
        :mod:`aepipe.thresholds` (cloned at fit), as for the windowed
        detectors. ``"best_f1"`` learns from the labels passed as
        ``fit(X, y)``. None: the one ``contamination`` stands for. Setting
        both ``threshold`` and a float ``contamination`` is an error.
    device : {"cpu", "cuda", "auto"} or str, default="cpu"
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks for the skorch net (e.g. ``skorch.callbacks.Checkpoint``).
    random_state : int, RandomState or None, default=None
        Seeds initialisation, shuffling, dropout, corruption and the
        validation split. Global random state is never touched.
    verbose : int, default=0
        ``>= 1`` shows a progress bar and logs epochs (logger ``aepipe``).
    handle_missing : {"error", "mask"}, default="error"
        ``"error"``: a missing value (NaN, None) raises a
        :class:`~aepipe.exceptions.DataValidationError` naming its column and
        row. ``"mask"``: missing entries are modelled: the network reads them
        as a neutral value (the training mean; p=0.5 for booleans; a uniform
        one-hot group for categories), the training loss and the scores sum
        the NLL over observed entries only (a record with fewer observed
        entries has fewer terms, so compare scores of similarly complete
        records), and :meth:`impute` fills them from the reconstruction.
        Infinities are always an error, and so is a record with no observed
        entry.
    checkpoint_dir : str, path or None, default=None
        Resumable training: after every epoch the weights, optimizer state,
        history, random state and early-stopping state are written atomically
        to ``checkpoint_dir/checkpoint.pt``. If training is interrupted
        (SIGTERM, a crash, Ctrl-C), calling ``fit`` again with the same data
        and parameters resumes from the last completed epoch, runs the
        remaining ``max_epochs`` and ends with the same weights as an
        uninterrupted fit. A checkpoint of
        another training raises :class:`~aepipe.exceptions.ModelFileError`;
        delete the directory to train from scratch. Loaded with
        ``torch.load(weights_only=True)``: no code is unpickled.
    encoder_noise : float, default=0.0
        A stochastic encoder, p(h|x) = N(f(x), encoder_noise^2 I): in training
        the code is perturbed by Gaussian noise of this standard deviation
        before it is decoded (a code that must survive noise spreads records
        apart). Scores, ``transform`` and ``reconstruct`` use the mean code
        f(x); ``transform(X, sample=True)`` draws codes from p(h|x). 0 (the
        default) is the deterministic encoder. Not for
        :class:`VariationalAutoencoder`, whose encoder learns its own
        variance.
    pretrain : {None, "layerwise"}, default=None
        ``"layerwise"``: greedy layer-wise pretraining (a stacked
        autoencoder) before the end-to-end training. Each encoder layer and
        the decoder layer that mirrors it are first trained as a shallow
        autoencoder of their own, bottom up: the first reconstructs the
        input under the model's likelihood (mixed column types and missing
        values included), each next one the codes of the layer below (a
        squared error). The end-to-end training (``max_epochs``, early
        stopping) then fine-tunes all layers from these weights. Penalties
        (sparsity, contraction, the VAE's KL) and ``dropout`` apply to the
        fine-tuning only; a variational encoder's top layer is pretrained on
        the posterior mean. Useful for deep stacks (``hidden_sizes`` of two
        layers or more); ``pipelines/benchmark_stacked.py`` compares it with
        training from scratch. None trains end to end from a random start.
    pretrain_epochs : int, default=10
        Epochs of pretraining per layer (``pretrain="layerwise"``).
    pretrain_noise : float in [0, 1), default=0.0
        Masking noise of the pretraining: each input entry of a layer is set
        to 0 (the training mean in standardised units; an inactive unit
        above the first layer) with this probability while that layer trains,
        making the stack one of *denoising* autoencoders (Vincent et al.,
        2010). 0 pretrains plain autoencoders.
    forgetting : float in [0, 1), default=0.0
        How :meth:`partial_fit` weighs the past: each call first multiplies
        the weight of every record seen before by ``1 - forgetting``, then
        adds the new records with weight 1 each. 0 keeps all records alike
        (the scaling statistics are those of all data seen, as one ``fit``
        on it would compute); 0.2 lets the statistics and the threshold
        follow a drifting stream, remembering about ``chunk size /
        forgetting`` records. Ignored by :meth:`fit`.
    handle_unknown : {"error", "score"}, default="error"
        A category not seen during fit. ``"error"``: a
        :class:`~aepipe.exceptions.DataValidationError` naming the column, row
        and value. ``"score"``: the record is scored, and that column counts
        as maximally surprising -- the negative log-probability of the
        *least* probable known category of the column under the record's
        reconstruction (``-log min_c p(c | h)``), more than any known
        category would cost there -- while the network reads the entry as
        unknown (as a missing one: a uniform one-hot group) and the other
        columns are scored as usual; ``feature_scores`` then points at that
        column.
        Training never accepts unseen categories (:meth:`partial_fit` raises
        for them: the decoder's categories are fixed at fit; refit to learn
        new ones).

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net; ``net_.history`` holds per-epoch losses (with
        ``pretrain="layerwise"``: of the end-to-end fine-tuning).
    pretrain_losses_ : list of float
        With ``pretrain="layerwise"``: each layer's last pretraining loss,
        input side first.
    n_samples_seen_ : int
        Records learnt from by ``fit`` and every :meth:`partial_fit` since.
    effective_n_samples_ : float
        The weight behind the current scaling statistics and threshold: the
        records seen, each discounted by ``1 - forgetting`` per later
        :meth:`partial_fit` call (``n_samples_seen_`` when ``forgetting=0``).
    noise_var_ : ndarray of shape (n_gaussian_columns,)
        Noise variance of each Gaussian (real) column under p(x|h), in the
        input's squared units: the learned one with
        ``gaussian_variance="learned"``, else the mean squared reconstruction
        residual on the training data (the maximum-likelihood variance given
        the decoder's means; the unit variance the ``"fixed"`` loss assumes is
        a convention of the score, not an estimate). Used by
        :meth:`sample_reconstruction` and :meth:`VariationalAutoencoder.sample`.
    layout_ : TabularLayout
        Column kinds and their positions in the encoded matrix.
    threshold_object_ : BaseThreshold
        The fitted threshold (``threshold``, or the one ``contamination``
        stands for).
    threshold_ : float
        Alarm limit on :meth:`anomaly_score`: higher scores are alarms.
    offset_ : float
        ``-threshold_``; ``decision_function = score_samples - offset_``.
    latent_dim_, hidden_sizes_ : int, tuple of int
        Resolved sizes.
    device_ : str
        Device used for training and scoring.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X is a DataFrame with string column names.

    See Also
    --------
    DenoisingAutoencoder, SparseAutoencoder, ContractiveAutoencoder,
    VariationalAutoencoder, PCADetector

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import Autoencoder
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> ae = Autoencoder(max_epochs=5, random_state=0).fit(X)
    >>> ae.transform(X).shape
    (200, 2)
    >>> ae.predict(X[:3]).tolist()
    [1, 1, 1]

    A stacked autoencoder (each layer pretrained on the codes of the one
    below, then fine-tuned end to end):

    >>> stacked = Autoencoder(hidden_sizes=(16, 8), pretrain="layerwise", pretrain_epochs=2,
    ...                       max_epochs=5, random_state=0).fit(X)
    >>> len(stacked.pretrain_losses_)  # 4 -> 16, 16 -> 8, 8 -> 2
    3

    A category unseen at fit, scored instead of refused:

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": X[:, 0], "shop": rng.choice(["a", "b"], size=200)})
    >>> ae = Autoencoder(max_epochs=5, handle_unknown="score", random_state=0).fit(frame)
    >>> new = pd.DataFrame({"x": [0.0, 0.0], "shop": ["a", "never seen"]})
    >>> nll = ae.feature_nll(new)["shop"]
    >>> bool(nll[1] > nll[0])
    True
    """

    _parameter_constraints: dict = {
        **BaseDetector._parameter_constraints,
        "hidden_sizes": [StrOptions({"auto"}), tuple, list],
        "latent_dim": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(_ACTIVATIONS)],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "gaussian_variance": [StrOptions({"fixed", "learned"})],
        "optimizer": [StrOptions({"adam", "adamw", "sgd"})],
        "callbacks": [list, None],
        "checkpoint_dir": [str, os.PathLike, None],
        "encoder_noise": [Interval(Real, 0, None, closed="left")],
        "pretrain": [StrOptions({"layerwise"}), None],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
        "pretrain_noise": [Interval(Real, 0, 1, closed="left")],
    }

    _net_name = "AutoencoderNet"
    # Categorical columns with more categories are stored by index and expanded to
    # one-hot a batch at a time (20,000 rows x 4,900 categories: 392 MB as one-hot).
    _max_one_hot = 64

    def __init__(
        self,
        hidden_sizes="auto",
        latent_dim="auto",
        *,
        activation="relu",
        dropout=0.0,
        gaussian_variance="fixed",
        feature_types=None,
        standardize=True,
        optimizer="adam",
        learning_rate=1e-3,
        weight_decay=0.0,
        batch_size=128,
        max_epochs=100,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        contamination="auto",
        threshold=None,
        device="cpu",
        callbacks=None,
        random_state=None,
        verbose=0,
        handle_missing="error",
        checkpoint_dir=None,
        encoder_noise=0.0,
        pretrain=None,
        pretrain_epochs=10,
        pretrain_noise=0.0,
        forgetting=0.0,
        handle_unknown="error",
    ):
        super().__init__(
            feature_types=feature_types, standardize=standardize, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold,
            device=device, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, forgetting=forgetting, handle_unknown=handle_unknown,
        )
        self.hidden_sizes = hidden_sizes
        self.latent_dim = latent_dim
        self.activation = activation
        self.dropout = dropout
        self.gaussian_variance = gaussian_variance
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.encoder_noise = encoder_noise
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_noise = pretrain_noise

    # ------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, *, epochs=1):
        """Continue training on new records X; on an unfitted model, :meth:`fit`.

        For a stream whose normal behaviour moves. Each call (see
        ``aepipe/estimators/_stream.py`` for the full policy):

        1. weighs the past by ``1 - forgetting`` and each new record by 1;
        2. updates the scaling statistics of the real columns as weighted
           running means and variances (with ``forgetting=0``: those of all
           records seen);
        3. folds the change of scaling into the network's first layer and
           its Gaussian outputs, so it computes the same function of the raw
           records as before, then trains ``epochs`` passes over X from there
           (no early stopping, no validation split);
        4. re-estimates the threshold (``threshold_``, ``offset_``),
           ``noise_var_`` and the ``feature_scores`` calibration on X with
           the updated network, blended with the previous values by the same
           weights.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            The new records, with the columns of the first fit. Categories
            unseen at fit are refused (the decoder's are fixed).
        y : ignored
        epochs : int, default=1
            Passes over X (ignored by the first call, which is ``fit``).

        Returns
        -------
        self : object

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe import Autoencoder
        >>> rng = np.random.default_rng(0)
        >>> ae = Autoencoder(max_epochs=5, forgetting=0.5, random_state=0)
        >>> ae = ae.partial_fit(rng.normal(size=(200, 3)))            # fits
        >>> ae = ae.partial_fit(rng.normal(loc=5.0, size=(200, 3)), epochs=2)
        >>> ae.n_samples_seen_, ae.effective_n_samples_
        (400, 300.0)
        >>> bool(np.all(np.abs(ae.layout_.center - 10 / 3) < 0.3))  # (200 * 0 + 200 * 5) / 300
        True
        """
        return self._partial_fit(X, epochs)

    def _partial_fit_encoded(self, Z: np.ndarray, epochs: int) -> None:
        import torch

        from ..nets import (
            TensorDataset,
            continue_training,
            member_seed,
            rescale_gaussian_inputs,
        )

        weight_old, weight_new = self._stream_weights(len(Z))
        Z, scale, shift = self._update_scaling(Z)
        rescale_gaussian_inputs(self.net_.module_, scale, shift)
        # A net rebuilt by aepipe.load was built for one record: batches as in fit.
        self.net_.batch_size = min(self.batch_size, len(Z))
        continue_training(self.net_, TensorDataset(
            torch.from_numpy(Z).to(self.device_),
            transform=one_hot_expander(self.layout_, self.device_)), epochs=epochs,
            seed=member_seed(resolve_seed(self.random_state), self.n_samples_seen_),
            device=self.device_)
        self.net_.train_split = None
        if getattr(self, "noise_var_", None) is not None:
            old = self.noise_var_
            self._fit_noise_var(Z)
            self.noise_var_ = blend(old, self.noise_var_, weight_old, weight_new)
        scores = self._anomaly_score_encoded(Z)
        self._blend_threshold(scores, weight_old, weight_new)
        self._blend_calibration(Z, weight_old, weight_new, inliers=scores <= self.threshold_)

    def _resolve_sizes(self, n_inputs: int) -> tuple[tuple[int, ...], int]:
        return (resolve_widths("hidden_sizes", self.hidden_sizes, n_inputs, HIDDEN),
                resolve_width("latent_dim", self.latent_dim, n_inputs, LATENT))

    def _module_kwargs(self) -> dict:
        return {}

    def _net_kwargs(self) -> dict:
        return {}

    def _net_class(self):
        from .. import nets

        return getattr(nets, self._net_name)

    def _make_net(self, n_train: int, valid_dataset):
        from ..nets import build_net
        from ..nn import AutoencoderModule

        return build_net(
            self._net_class(), AutoencoderModule,
            module_params={
                "widths": self.layout_.widths, "hidden_sizes": self.hidden_sizes_,
                "latent_dim": self.latent_dim_, "activation": self.activation,
                "dropout": self.dropout, "gaussian_variance": self.gaussian_variance,
                "encoder_noise": self.encoder_noise, **self._module_kwargs(),
            },
            net_params=self._net_kwargs(), optimizer=self.optimizer,
            learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            batch_size=min(self.batch_size, max(n_train, 1)), max_epochs=self.max_epochs,
            valid=valid_dataset, patience=self.patience, device=self.device_,
            verbose=self.verbose, callbacks=self.callbacks or (),
        )

    def _net_for_loading(self, weights: dict):
        """The saved-state protocol's hook (aepipe/_saved_state.py): the net to load into."""
        net = self._make_net(1, None)
        net.mask_missing = self.handle_missing == "mask"
        return net

    def _fit_encoded(self, Z: np.ndarray) -> None:
        import torch

        from ..nets import TensorDataset, fit_net, resolve_device, validation_split

        self.device_ = resolve_device(self.device)
        self.hidden_sizes_, self.latent_dim_ = self._resolve_sizes(self.layout_.sizing_width)
        seed = resolve_seed(self.random_state)
        expand = one_hot_expander(self.layout_, self.device_)
        tensor, valid = validation_split(
            torch.from_numpy(Z).to(self.device_), self.validation_fraction,
            early_stopping=self.early_stopping, min_samples=20, seed=seed, transform=expand)
        net = self._make_net(len(tensor), valid)
        net.mask_missing = self.handle_missing == "mask"
        try:
            fit_net(net, TensorDataset(tensor, transform=expand), seed=seed, device=self.device_,
                    checkpoint_dir=self.checkpoint_dir,
                    fingerprint=(self._checkpoint_fingerprint(Z) if self.checkpoint_dir is not None
                                 else ""),
                    after_initialize=None if self.pretrain is None else (
                        lambda net: self._pretrain(net, tensor, expand)))
        except TrainingDivergedError:
            self._keep_last_good_weights(net, Z, seed)
            raise
        self.net_ = net
        self._score_seed = seed
        self._fit_noise_var(Z)
        self._init_stream_state(Z)

    def _pretrain(self, net, tensor, expand) -> None:
        """Layer-wise pretraining of the initialised ``net``'s module on the training records."""
        from ..nets import pretrain_layerwise

        self.pretrain_losses_ = pretrain_layerwise(
            net.module_, tensor, epochs=self.pretrain_epochs, batch_size=net.batch_size,
            optimizer=self.optimizer, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, noise=self.pretrain_noise,
            mask_missing=self.handle_missing == "mask", device=self.device_,
            verbose=self.verbose, transform=expand,
        )

    def _keep_last_good_weights(self, net, Z: np.ndarray, seed: int) -> None:
        """After a divergence: stay fitted with the last good epoch's weights, or unfit."""
        from ..nets import divergence_guard

        guard = divergence_guard(net)
        for name in ("offset_", "net_"):
            if hasattr(self, name):
                delattr(self, name)
        if guard is None or guard.restored_epoch_ is None:
            return
        self.net_, self._score_seed = net, seed
        scores = self._anomaly_score_encoded(Z)
        if np.isfinite(scores).all():
            self._set_threshold(self._fitted_threshold(scores))
        else:
            del self.net_

    def _checkpoint_fingerprint(self, Z: np.ndarray) -> str:
        """Hash of the training data, layout and the parameters that shape the model."""
        import hashlib

        ignored = {"callbacks", "checkpoint_dir", "device", "max_epochs", "random_state",
                   "verbose"}
        params = sorted((k, repr(v)) for k, v in self.get_params(deep=False).items()
                        if k not in ignored)
        digest = hashlib.sha256(np.ascontiguousarray(Z).tobytes())
        digest.update(repr((type(self).__name__, params, self.layout_.widths)).encode())
        return digest.hexdigest()

    def _net_input(self, module, x):
        # Missing entries (NaN) and unseen categories (-1) reach the network as unknown.
        if (getattr(self, "handle_missing", "error") == "mask"
                or getattr(self, "handle_unknown", "error") == "score"):
            return module.head.fill_missing(x)
        return x

    def _observed(self, module, x):
        if getattr(self, "handle_missing", "error") == "mask":
            return module.head.observed(x)
        return None

    def impute(self, X, *, n_iter: int = 10):
        """X with its missing entries filled in by the autoencoder's reconstruction.

        Missing entries start at the neutral fill value; each of ``n_iter``
        rounds replaces them by the mean of p(x|h(x)) while observed entries
        stay as given, so correlations learnt between columns carry the
        observed values into the missing ones. Needs ``handle_missing="mask"``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        n_iter : int, default=10

        Returns
        -------
        X_imputed : ndarray or DataFrame like ``X``
            Observed entries unchanged; missing ones imputed (in X's units).
        """
        import pandas as pd
        import torch
        from sklearn.utils.validation import check_is_fitted

        from .._tabular import as_frame

        check_is_fitted(self)
        self._require_mask("impute")
        Z = self._validate_input(X, reset=False)

        def fill(module, x):
            missing = torch.isnan(x)
            current = module.head.fill_missing(x)
            for _ in range(int(n_iter)):
                current = torch.where(missing, module.head.mean(module(current).params), x)
            return self._compact(current)

        decoded = self.layout_.decode(self._batches(Z, fill), like=X)
        if self.layout_.numeric_only:
            values = np.asarray(X, dtype=np.float64)
            out = np.where(np.isnan(values), np.asarray(decoded, dtype=np.float64), values)
            if isinstance(X, pd.DataFrame):
                return pd.DataFrame(out, columns=X.columns, index=X.index)
            return out
        frame = as_frame(X, self.layout_.names).copy()
        for name in self.layout_.names:
            missing = frame[name].isna()
            if missing.any():
                frame[name] = frame[name].where(~missing, decoded[name].to_numpy())
        return frame

    @property
    def _n_features_out(self) -> int:
        return self.latent_dim_

    # ------------------------------------------------------------ stochastic encoder/decoder
    def _fit_noise_var(self, Z: np.ndarray) -> None:
        """``noise_var_``: the learned variances, or the training residuals' mean square."""
        positions = self.layout_.gaussian_positions
        head = self.net_.module_.head
        if head.log_var is not None:
            standardised = np.exp(head.log_var.detach().clamp(-12.0, 12.0).cpu().numpy())
        elif len(positions):
            mean = self._decode_latent(self._encode_latent(Z))[:, positions]
            residual_sq = (mean.astype(np.float64) - Z[:, positions]) ** 2
            observed = np.isfinite(residual_sq)  # missing entries (handle_missing="mask")
            count = observed.sum(axis=0)
            total = np.where(observed, residual_sq, 0.0).sum(axis=0)
            # A column never observed keeps the unit variance of the loss.
            standardised = np.where(count > 0, total / np.maximum(count, 1), 1.0)
        else:
            standardised = np.zeros(0)
        standardised = np.maximum(np.asarray(standardised, dtype=np.float64), 1e-12)
        self.noise_var_ = standardised * self.layout_.scale**2

    def _noise_std_standardised(self) -> np.ndarray:
        noise_var = getattr(self, "noise_var_", None)
        if noise_var is None:
            raise ValueError(
                f"This {type(self).__name__} has no noise_var_ (it was saved by an aepipe "
                "before sampling existed, or its training diverged); fit it again to sample "
                "records."
            )
        return np.sqrt(np.asarray(noise_var, dtype=np.float64)) / self.layout_.scale

    def _code_distribution(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of p(h|x), each (n_samples, latent_dim_)."""
        import torch

        if self.net_.module_.variational:
            def mean_and_std(module, x):
                encoded = module.encode(self._net_input(module, x))
                return torch.cat([encoded.mu, torch.exp(0.5 * encoded.log_var)], dim=1)

            out = self._finite_batches(Z, mean_and_std).astype(np.float64)
            return out[:, :self.latent_dim_], out[:, self.latent_dim_:]
        if self.encoder_noise <= 0:
            raise ValueError(
                f"This {type(self).__name__} has a deterministic encoder (encoder_noise=0), so "
                "its codes cannot be sampled; fit it with encoder_noise > 0 (e.g. 0.1), or use "
                "VariationalAutoencoder, whose encoder is stochastic."
            )
        mean = self._encode_latent(Z).astype(np.float64)
        return mean, np.full_like(mean, float(self.encoder_noise))

    def transform(self, X: ArrayLike, *, sample: bool = False, random_state=None) -> np.ndarray:
        """Latent codes of X: the mean of p(h|x), or with ``sample=True`` a draw from it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        sample : bool, default=False
            Draw each code from the encoder's distribution p(h|x) instead of
            returning its mean: N(f(x), encoder_noise^2 I) for a model fitted
            with ``encoder_noise > 0``, the posterior q(z|x) for a
            :class:`VariationalAutoencoder`. A deterministic encoder raises a
            ValueError.
        random_state : int, RandomState or None, default=None
            Seeds the draw (``sample=True`` only): the same seed gives the same
            codes. None draws fresh randomness. Global random state is never
            touched.

        Returns
        -------
        codes : ndarray of shape (n_samples, latent_dim_)

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe import Autoencoder
        >>> X = np.random.default_rng(0).normal(size=(200, 4))
        >>> ae = Autoencoder(encoder_noise=0.1, max_epochs=5, random_state=0).fit(X)
        >>> draws = ae.transform(X[:3], sample=True, random_state=1)
        >>> bool((draws == ae.transform(X[:3], sample=True, random_state=1)).all())
        True
        >>> bool(np.abs(draws - ae.transform(X[:3])).max() < 1.0)
        True
        """
        if not sample:
            return super().transform(X)
        check_is_fitted(self)
        mean, std = self._code_distribution(self._validate_input(X, reset=False))
        rng = np.random.default_rng(resolve_seed(random_state))
        return mean + std * rng.standard_normal(mean.shape)

    def sample_reconstruction(self, X: ArrayLike, *, sample_codes: bool = False,
                              random_state=None):
        """Records drawn from the decoder's p(x|h) at the codes of X, in X's units.

        :meth:`reconstruct` returns the mean of p(x|h(x)) (most probable
        categories, booleans by p >= 0.5); this draws from it, column by
        column: a Gaussian (real) column from N(mean, ``noise_var_``), a
        boolean from its Bernoulli probability, a category from its softmax
        probabilities. Integer columns are rounded, as in ``reconstruct``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        sample_codes : bool, default=False
            Also draw each code from p(h|x) first (see :meth:`transform`),
            instead of decoding its mean: the full stochastic path
            x -> h -> x'.
        random_state : int, RandomState or None, default=None
            Seeds the draws: the same seed gives the same records.

        Returns
        -------
        X_sampled : ndarray or DataFrame like ``X``
            A DataFrame (same columns, dtypes and index) when ``X`` is one, or
            when the model was fitted on a mixed-type table.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from aepipe import Autoencoder
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"x": rng.normal(size=300),
        ...                   "kind": pd.Categorical(rng.choice(["a", "b"], size=300))})
        >>> ae = Autoencoder(max_epochs=5, random_state=0).fit(X)
        >>> draw = ae.sample_reconstruction(X.head(4), random_state=0)
        >>> list(draw.columns), str(draw["kind"].dtype)
        (['x', 'kind'], 'category')
        """
        check_is_fitted(self)
        Z = self._validate_input(X, reset=False)
        seed = resolve_seed(random_state)
        if sample_codes:
            mean, std = self._code_distribution(Z)
            codes = mean + std * np.random.default_rng([seed, 0]).standard_normal(mean.shape)
        else:
            codes = self._encode_latent(Z)
        mean = self._decoder_mean(np.asarray(codes, dtype=np.float32))
        return self._draw_records(mean, np.random.default_rng([seed, 1]), like=X)

    def _decoder_mean(self, H: np.ndarray) -> np.ndarray:
        """The mean of p(x|h) in the network's layout: every category group one-hot."""
        return self._finite_batches(H, lambda m, h: m.head.mean(m.decoder(h)), expand=False)

    def _draw_records(self, mean: np.ndarray, rng, like=None):
        from ._sampling import as_original_frame, sample_encoded

        draw = sample_encoded(self.layout_, mean, self._noise_std_standardised(), rng)
        decoded = self.layout_.decode(draw, like=like)
        if like is None:
            names = getattr(self, "feature_names_in_", None)
            return as_original_frame(self.layout_, decoded, names)
        return decoded

    def predict_proba_columns(self, X: ArrayLike) -> dict:
        """Class probabilities of the boolean and categorical columns in the reconstruction.

        The decoder's p(x|h(x)) for each discrete column: the softmax over a
        categorical column's categories, the Bernoulli probability of a
        boolean column. :meth:`reconstruct` reports their argmax.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        probabilities : dict of {column name: DataFrame of shape (n_samples, n_values)}
            One frame per boolean or categorical column, with one column per
            category (``False``/``True`` for a boolean); rows sum to 1 and are
            indexed like ``X`` when it is a DataFrame. Empty for a model of
            real columns only.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from aepipe import Autoencoder
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"x": rng.normal(size=300),
        ...                   "kind": pd.Categorical(rng.choice(["a", "b", "c"], size=300))})
        >>> ae = Autoencoder(max_epochs=5, random_state=0).fit(X)
        >>> proba = ae.predict_proba_columns(X.head(2))["kind"]
        >>> list(proba.columns), bool(np.allclose(proba.sum(axis=1), 1.0))
        (['a', 'b', 'c'], True)
        """
        from ._sampling import column_probabilities

        check_is_fitted(self)
        Z = self._validate_input(X, reset=False)
        return column_probabilities(self.layout_, self._decoder_mean(self._encode_latent(Z)),
                                    like=X)

    # ------------------------------------------------------------ inference
    def _batches(self, Z: np.ndarray, fn, module=None, expand: bool = True):
        """``fn(module, tensor) -> tensor`` over ``Z`` (:func:`aepipe.nn.batched_inference`).

        ``expand``: ``Z`` holds encoded records, whose categories stored by
        index are expanded to one-hot per batch before ``fn`` sees them
        (False for codes, e.g. in ``_decode_latent``).
        """
        from ..nn import batched_inference

        return batched_inference(
            self.net_.module_ if module is None else module, Z, fn, device=self.device_,
            transform=one_hot_expander(self.layout_, self.device_) if expand else None)

    def _finite_batches(self, Z: np.ndarray, fn, expand: bool = True) -> np.ndarray:
        """``_batches`` in float32, redone in float64 if a record overflows float32.

        Records far outside the training range (say 1e30 standard deviations
        out) overflow the float32 network; they are real, extreme anomalies and
        get a finite (huge) score from a float64 copy of the module instead.
        """
        out = self._batches(Z, fn, expand=expand)
        if np.isfinite(out).all():
            return out
        import copy

        module64 = copy.deepcopy(self.net_.module_).double()
        return self._batches(np.asarray(Z, dtype=np.float64), fn, module=module64,
                             expand=expand)

    def _nll(self, module, x):
        """Per-column reconstruction NLL of a batch, (batch, n_columns)."""
        return module.head.nll(module(self._net_input(module, x)).params, x,
                               self._observed(module, x))

    def _column_scores(self, Z: np.ndarray) -> np.ndarray:
        return self._finite_batches(Z, self._nll).astype(np.float64)

    def _anomaly_score_encoded(self, Z: np.ndarray) -> np.ndarray:
        import torch

        # Summed per batch in float64 inside torch: one value per record leaves the
        # network instead of an (n, n_columns) matrix and its float64 copy.
        return self._finite_batches(
            Z, lambda m, x: self._nll(m, x).sum(dim=1, dtype=torch.float64))

    def _encode_latent(self, Z: np.ndarray) -> np.ndarray:
        return self._finite_batches(Z, lambda m, x: m.encode(self._net_input(m, x)).code)

    def _decode_latent(self, H: np.ndarray) -> np.ndarray:
        return self._finite_batches(H, lambda m, h: self._compact(m.head.mean(m.decoder(h))),
                                    expand=False)

    def _compact(self, mean):
        """The head's mean of a batch in the encoded layout (categories stored by index:
        the most probable one's index)."""
        expander = one_hot_expander(self.layout_, mean.device)
        return mean if expander is None else expander.compact(mean)


class DenoisingAutoencoder(Autoencoder):
    """Autoencoder trained to reconstruct clean x from a corrupted x~ ~ C(x~|x).

    The corruption is applied in training steps only; validation, scoring,
    ``transform`` and ``reconstruct`` see the input as given, so
    :meth:`reconstruct` is a denoiser.

    Parameters
    ----------
    corruption : {"gaussian", "masking", "salt_and_pepper"}, default="gaussian"
        ``gaussian``: add N(0, noise_level^2) in standardised units;
        ``masking``: set each entry with probability ``noise_level`` to the
        training mean; ``salt_and_pepper``: set each entry with probability
        ``noise_level`` to its column's batch minimum or maximum.
    noise_level : float, default=0.2
    **params
        All parameters of :class:`Autoencoder`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import Pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from aepipe import DenoisingAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> pipe = Pipeline([("scale", StandardScaler()),
    ...                  ("ae", DenoisingAutoencoder(max_epochs=5, random_state=0))])
    >>> pipe.fit(X).score_samples(X).shape
    (200,)
    """

    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "corruption": [StrOptions({"gaussian", "masking", "salt_and_pepper"})],
        "noise_level": [Interval(Real, 0, None, closed="left")],
    }
    _net_name = "DenoisingNet"

    def __init__(self, hidden_sizes="auto", latent_dim="auto", *, corruption="gaussian",
                 noise_level=0.2, activation="relu", dropout=0.0, gaussian_variance="fixed",
                 feature_types=None, standardize=True, optimizer="adam", learning_rate=1e-3,
                 weight_decay=0.0, batch_size=128, max_epochs=100, early_stopping=True,
                 validation_fraction=0.1, patience=10, contamination="auto", threshold=None, device="cpu",
                 callbacks=None, random_state=None, verbose=0, handle_missing="error", checkpoint_dir=None,
                 encoder_noise=0.0, pretrain=None, pretrain_epochs=10,
                 pretrain_noise=0.0, forgetting=0.0, handle_unknown="error"):
        super().__init__(
            hidden_sizes, latent_dim, activation=activation, dropout=dropout,
            gaussian_variance=gaussian_variance, feature_types=feature_types,
            standardize=standardize, optimizer=optimizer, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold, device=device,
            callbacks=callbacks, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, checkpoint_dir=checkpoint_dir,
            encoder_noise=encoder_noise, pretrain=pretrain, pretrain_epochs=pretrain_epochs,
            pretrain_noise=pretrain_noise, forgetting=forgetting,
            handle_unknown=handle_unknown,
        )
        self.corruption = corruption
        self.noise_level = noise_level

    def _fit_encoded(self, Z):
        if self.corruption != "gaussian" and self.noise_level > 1:
            raise ValueError(
                f"noise_level={self.noise_level} is a probability for "
                f"corruption={self.corruption!r}; use a value in [0, 1]."
            )
        super()._fit_encoded(Z)

    def _net_kwargs(self):
        return {"corruption": self.corruption, "noise_level": self.noise_level}

    def score_function(self, X):
        """The estimated score of the data distribution, grad log p(x), per Gaussian column.

        A denoising autoencoder trained with Gaussian corruption of variance
        ``s2 = noise_level ** 2`` (in standardised units) learns
        ``r(x) ~ E[x | x + noise]``, and by Tweedie's formula (Miyasawa 1961;
        Alain and Bengio 2014) ``(r(x) - x) / s2`` is the gradient of the log
        of the training density smoothed by that noise -- the density's own
        score as ``noise_level`` goes to 0. It is returned in the input's
        units: the standardised score divided by each column's scale. It
        points from ``x`` towards more probable values; its size says how
        steeply the density falls there.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        score : ndarray of shape (n_samples, n_gaussian_columns), or a DataFrame
            (the Gaussian columns, X's index) when X is one. Boolean and
            categorical columns have no gradient and are left out.

        Raises
        ------
        ValueError
            When the model was not trained with Gaussian corruption of a
            positive ``noise_level``.

        Examples
        --------
        >>> import numpy as np
        >>> from aepipe import DenoisingAutoencoder
        >>> X = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(2000, 1))
        >>> dae = DenoisingAutoencoder(latent_dim=1, noise_level=0.5, activation="tanh",
        ...                            learning_rate=3e-3, max_epochs=60, early_stopping=False,
        ...                            random_state=0).fit(X)
        >>> # N(3, 2^2) smoothed by the noise: -(x - 3) / (4 * 1.25) = 0.4, 0, -0.4
        >>> g = dae.score_function(np.array([[1.0], [3.0], [5.0]])).ravel()
        >>> bool(np.allclose(g, [0.4, 0.0, -0.4], atol=0.15))
        True

        The estimate is ``(r(x) - x)`` amplified by ``1 / noise_level ** 2``:
        a small ``noise_level`` is less biased but noisier.
        """
        import pandas as pd
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        if self.corruption != "gaussian" or self.noise_level <= 0:
            raise ValueError(
                f"score_function needs a model trained with corruption='gaussian' and "
                f"noise_level > 0; this one has corruption={self.corruption!r}, "
                f"noise_level={self.noise_level}."
            )
        Z = self._validate_input(X, reset=False)
        R = np.asarray(self._decode_latent(self._encode_latent(Z)), dtype=np.float64)
        positions = self.layout_.gaussian_positions
        standardised = (R[:, positions] - Z[:, positions].astype(np.float64)) / (
            self.noise_level**2)
        score = standardised / self.layout_.scale
        if isinstance(X, pd.DataFrame):
            names = [c.name for c in self.layout_.columns if c.kind == "gaussian"]
            return pd.DataFrame(score, index=X.index, columns=names)
        return score


class SparseAutoencoder(Autoencoder):
    """Autoencoder with a sparse code: KL(rho || mean activation) or L1 penalty.

    Parameters
    ----------
    sparsity : {"kl", "l1"}, default="kl"
        ``"kl"``: the code is a sigmoid and the penalty is
        ``beta * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the mean
        activation of unit j over a batch. ``"l1"``: ReLU code and
        ``beta * mean_i ||h_i||_1``.
    target_activation : float, default=0.05
        rho, the target mean activation (KL only).
    sparsity_weight : float, default=0.1
        beta.
    latent_dim : int or "auto", default="auto"
        May exceed the input width (an overcomplete sparse code).
    **params
        All other parameters of :class:`Autoencoder`.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import SparseAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> ae = SparseAutoencoder(latent_dim=8, max_epochs=5, random_state=0).fit(X)
    >>> bool(((ae.transform(X) >= 0) & (ae.transform(X) <= 1)).all())
    True
    """

    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "sparsity": [StrOptions({"kl", "l1"})],
        "target_activation": [Interval(Real, 0, 1, closed="neither")],
        "sparsity_weight": [Interval(Real, 0, None, closed="left")],
    }
    _net_name = "SparseNet"

    def __init__(self, hidden_sizes="auto", latent_dim="auto", *, sparsity="kl",
                 target_activation=0.05, sparsity_weight=0.1, activation="relu", dropout=0.0,
                 gaussian_variance="fixed", feature_types=None, standardize=True,
                 optimizer="adam", learning_rate=1e-3, weight_decay=0.0, batch_size=128,
                 max_epochs=100, early_stopping=True, validation_fraction=0.1, patience=10,
                 contamination="auto", threshold=None, device="cpu", callbacks=None, random_state=None,
                 verbose=0, handle_missing="error", checkpoint_dir=None,
                 encoder_noise=0.0, pretrain=None, pretrain_epochs=10,
                 pretrain_noise=0.0, forgetting=0.0, handle_unknown="error"):
        super().__init__(
            hidden_sizes, latent_dim, activation=activation, dropout=dropout,
            gaussian_variance=gaussian_variance, feature_types=feature_types,
            standardize=standardize, optimizer=optimizer, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold, device=device,
            callbacks=callbacks, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, checkpoint_dir=checkpoint_dir,
            encoder_noise=encoder_noise, pretrain=pretrain, pretrain_epochs=pretrain_epochs,
            pretrain_noise=pretrain_noise, forgetting=forgetting,
            handle_unknown=handle_unknown,
        )
        self.sparsity = sparsity
        self.target_activation = target_activation
        self.sparsity_weight = sparsity_weight

    def _module_kwargs(self):
        return {"latent_activation": "sigmoid" if self.sparsity == "kl" else "relu"}

    def _net_kwargs(self):
        return {"sparsity": self.sparsity, "target_activation": self.target_activation,
                "sparsity_weight": self.sparsity_weight}


class ContractiveAutoencoder(Autoencoder):
    """Autoencoder penalised by lambda * ||dh/dx||_F^2 (Rifai et al., 2011).

    The Frobenius norm of the encoder Jacobian is computed exactly, per
    record, by multiplying the layer Jacobians from the code side (no finite
    differences, no per-unit backward passes).

    Parameters
    ----------
    contraction_weight : float, default=0.01
        lambda.
    latent_activation : {"tanh", "sigmoid"} or None, default="tanh"
        Non-linearity on the code (a saturating code is what makes the
        contraction meaningful).
    **params
        All other parameters of :class:`Autoencoder`.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import ContractiveAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> ContractiveAutoencoder(max_epochs=5, random_state=0).fit(X).anomaly_score(X).shape
    (200,)
    """

    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "contraction_weight": [Interval(Real, 0, None, closed="left")],
        "latent_activation": [StrOptions({"tanh", "sigmoid"}), None],
    }
    _net_name = "ContractiveNet"

    def __init__(self, hidden_sizes="auto", latent_dim="auto", *, contraction_weight=0.01,
                 latent_activation="tanh", activation="tanh", dropout=0.0,
                 gaussian_variance="fixed", feature_types=None, standardize=True,
                 optimizer="adam", learning_rate=1e-3, weight_decay=0.0, batch_size=128,
                 max_epochs=100, early_stopping=True, validation_fraction=0.1, patience=10,
                 contamination="auto", threshold=None, device="cpu", callbacks=None, random_state=None,
                 verbose=0, handle_missing="error", checkpoint_dir=None,
                 encoder_noise=0.0, pretrain=None, pretrain_epochs=10,
                 pretrain_noise=0.0, forgetting=0.0, handle_unknown="error"):
        super().__init__(
            hidden_sizes, latent_dim, activation=activation, dropout=dropout,
            gaussian_variance=gaussian_variance, feature_types=feature_types,
            standardize=standardize, optimizer=optimizer, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold, device=device,
            callbacks=callbacks, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, checkpoint_dir=checkpoint_dir,
            encoder_noise=encoder_noise, pretrain=pretrain, pretrain_epochs=pretrain_epochs,
            pretrain_noise=pretrain_noise, forgetting=forgetting,
            handle_unknown=handle_unknown,
        )
        self.contraction_weight = contraction_weight
        self.latent_activation = latent_activation

    def _module_kwargs(self):
        return {"latent_activation": self.latent_activation}

    def _net_kwargs(self):
        return {"contraction_weight": self.contraction_weight}


class VariationalAutoencoder(Autoencoder):
    """Variational autoencoder: Gaussian q(z|x), reparameterisation, beta * KL to N(0, I).

    Scoring is deterministic by default: the decoder's NLL at the posterior
    mean. With ``n_score_samples > 0`` the anomaly score is a seeded
    Monte-Carlo estimate of the negative ELBO,
    ``mean_s[-log p(x|z_s)] + KL(q(z|x) || N(0, I))`` with ``z_s ~ q(z|x)``;
    ``feature_nll`` then holds the per-column expected NLL (the KL term is
    a property of the whole record and is not split across columns).

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL term (beta-VAE).
    n_score_samples : int, default=0
        0 scores at the posterior mean; k > 0 averages k samples of z.
    **params
        All other parameters of :class:`Autoencoder`. ``transform`` returns
        the posterior mean.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import VariationalAutoencoder
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> vae = VariationalAutoencoder(n_score_samples=10, max_epochs=5, random_state=0).fit(X)
    >>> bool(np.all(vae.anomaly_score(X) == vae.anomaly_score(X)))
    True
    """

    _parameter_constraints: dict = {
        **Autoencoder._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "n_score_samples": [Interval(Integral, 0, None, closed="left")],
    }
    _net_name = "VariationalNet"

    def __init__(self, hidden_sizes="auto", latent_dim="auto", *, beta=1.0, n_score_samples=0,
                 activation="relu", dropout=0.0, gaussian_variance="fixed", feature_types=None,
                 standardize=True, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                 batch_size=128, max_epochs=100, early_stopping=True, validation_fraction=0.1,
                 patience=10, contamination="auto", threshold=None, device="cpu", callbacks=None,
                 random_state=None, verbose=0, handle_missing="error", checkpoint_dir=None,
                 encoder_noise=0.0, pretrain=None, pretrain_epochs=10,
                 pretrain_noise=0.0, forgetting=0.0, handle_unknown="error"):
        super().__init__(
            hidden_sizes, latent_dim, activation=activation, dropout=dropout,
            gaussian_variance=gaussian_variance, feature_types=feature_types,
            standardize=standardize, optimizer=optimizer, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold, device=device,
            callbacks=callbacks, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, checkpoint_dir=checkpoint_dir,
            encoder_noise=encoder_noise, pretrain=pretrain, pretrain_epochs=pretrain_epochs,
            pretrain_noise=pretrain_noise, forgetting=forgetting,
            handle_unknown=handle_unknown,
        )
        self.beta = beta
        self.n_score_samples = n_score_samples

    def _module_kwargs(self):
        return {"variational": True}

    def _fit_encoded(self, Z):
        if self.encoder_noise > 0:
            raise ValueError(
                f"encoder_noise={self.encoder_noise} does not apply to VariationalAutoencoder: "
                "its encoder is stochastic already (it learns q(z|x)); leave encoder_noise=0 "
                "and sample codes with transform(X, sample=True)."
            )
        super()._fit_encoded(Z)

    def sample(self, n_samples: int = 1, *, random_state=None):
        """Draw new records from the generative model: z ~ N(0, I), then x ~ p(x|z).

        Every column is drawn from its decoder distribution (a real column
        from N(mean, ``noise_var_``), a boolean from its Bernoulli
        probability, a category from its softmax), and returned in the
        fitted columns and dtypes (integers rounded and clipped to their
        range, categories with their categorical dtype).

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState or None, default=None
            Seeds the draws: the same seed gives the same records. None draws
            fresh randomness. Global random state is never touched.

        Returns
        -------
        X_new : DataFrame of shape (n_samples, n_features) when the model was
            fitted on a DataFrame (its columns and dtypes), else an ndarray.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from aepipe import VariationalAutoencoder
        >>> rng = np.random.default_rng(0)
        >>> X = pd.DataFrame({"size": rng.normal(10.0, 2.0, size=300),
        ...                   "count": rng.poisson(4, size=300),
        ...                   "ok": rng.random(300) < 0.8,
        ...                   "kind": rng.choice(["a", "b", "c"], size=300)})
        >>> vae = VariationalAutoencoder(max_epochs=10, random_state=0).fit(X)
        >>> new = vae.sample(5, random_state=0)
        >>> new.shape, bool((new.dtypes == X.dtypes).all())
        ((5, 4), True)
        >>> new.equals(vae.sample(5, random_state=0))
        True
        """
        check_is_fitted(self)
        if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, Integral) or (
                n_samples < 1):
            raise ValueError(f"n_samples={n_samples!r} must be an integer >= 1.")
        rng = np.random.default_rng(resolve_seed(random_state))
        codes = rng.standard_normal((int(n_samples), self.latent_dim_)).astype(np.float32)
        return self._draw_records(self._decoder_mean(codes), rng)

    def _net_kwargs(self):
        return {"beta": self.beta}

    def _monte_carlo_nll(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per-column expected NLL, per-record KL) from ``n_score_samples`` draws."""
        import torch

        from ..nn import gaussian_kl

        def per_batch(module, x):
            encoded = module.encode(self._net_input(module, x))
            observed = self._observed(module, x)
            expected = sum(
                module.head.nll(module.decoder(module.sample_latent(encoded.mu, encoded.log_var)),
                                x, observed)
                for _ in range(self.n_score_samples)
            ) / self.n_score_samples
            return torch.cat([expected, gaussian_kl(encoded.mu, encoded.log_var)[:, None]], dim=1)

        # Seeded per call, so the same records always get the same estimate.
        with torch_seeded(self._score_seed, self.device_):
            out = self._finite_batches(Z, per_batch).astype(np.float64)
        return out[:, :-1], out[:, -1]

    def _column_scores(self, Z):
        if self.n_score_samples == 0:
            return super()._column_scores(Z)
        return self._monte_carlo_nll(Z)[0]

    def _anomaly_score_encoded(self, Z):
        if self.n_score_samples == 0:
            return super()._anomaly_score_encoded(Z)
        per_column, kl = self._monte_carlo_nll(Z)
        return per_column.sum(axis=1) + kl
