"""The worked example of docs/architecture.md: a new autoencoder variant in two classes.

The net and the estimator below are all a variant needs: aepipe.save/load,
clone, GridSearchCV and scikit-learn's checks work on it without an edit
anywhere else in the library. (A variant shipped *in* aepipe also gets its
two public names exported and a case in tests/data/frozen/record.py.)
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

import aepipe
from aepipe import Autoencoder
from aepipe.nets import AutoencoderNet


class CodeShrinkageNet(AutoencoderNet):
    """Adds ``shrinkage * mean ||h||^2``: codes are pulled towards the origin."""

    def __init__(self, module, *args, shrinkage=0.1, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.shrinkage = shrinkage

    def penalty(self, y_pred, X):
        return self.shrinkage * y_pred.code.pow(2).sum(dim=1).mean()


class CodeShrinkageAutoencoder(Autoencoder):
    """An autoencoder whose codes are shrunk towards the origin."""

    _parameter_constraints = {**Autoencoder._parameter_constraints, "shrinkage": [float]}

    # scikit-learn reads the parameters off the signature: spell them all out,
    # as every aepipe estimator does, and pass Autoencoder's to it.
    def __init__(self, hidden_sizes="auto", latent_dim="auto", *, shrinkage=0.1,
                 activation="relu", dropout=0.0, gaussian_variance="fixed", feature_types=None,
                 standardize=True, optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                 batch_size=128, max_epochs=100, early_stopping=True, validation_fraction=0.1,
                 patience=10, contamination="auto", threshold=None, device="cpu",
                 callbacks=None, random_state=None, verbose=0, handle_missing="error",
                 checkpoint_dir=None, encoder_noise=0.0, pretrain=None, pretrain_epochs=10,
                 pretrain_noise=0.0, forgetting=0.0, handle_unknown="error"):
        super().__init__(
            hidden_sizes, latent_dim, activation=activation, dropout=dropout,
            gaussian_variance=gaussian_variance, feature_types=feature_types,
            standardize=standardize, optimizer=optimizer, learning_rate=learning_rate,
            weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            patience=patience, contamination=contamination, threshold=threshold,
            device=device, callbacks=callbacks, random_state=random_state, verbose=verbose,
            handle_missing=handle_missing, checkpoint_dir=checkpoint_dir,
            encoder_noise=encoder_noise, pretrain=pretrain, pretrain_epochs=pretrain_epochs,
            pretrain_noise=pretrain_noise, forgetting=forgetting, handle_unknown=handle_unknown)
        self.shrinkage = shrinkage

    def _net_class(self):
        return CodeShrinkageNet

    def _net_kwargs(self):
        return {"shrinkage": self.shrinkage}


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    X[:, 3] = X[:, 0] - X[:, 1]
    return X


def test_the_variant_trains_with_its_penalty():
    X = _data()
    model = CodeShrinkageAutoencoder(shrinkage=0.5, max_epochs=5, random_state=0).fit(X)
    assert isinstance(model.net_, CodeShrinkageNet) and model.net_.shrinkage == 0.5
    plain = Autoencoder(max_epochs=5, random_state=0).fit(X)
    assert np.abs(model.transform(X)).mean() < np.abs(plain.transform(X)).mean()


def test_the_variant_saves_and_loads_without_a_registration(tmp_path):
    X = _data()
    model = CodeShrinkageAutoencoder(max_epochs=5, threshold="pot", random_state=0).fit(X)
    loaded = aepipe.load(aepipe.save(model, tmp_path / "shrink.aepipe"))
    assert type(loaded) is CodeShrinkageAutoencoder
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.threshold_ == model.threshold_


def test_the_variant_is_a_scikit_learn_estimator():
    model = CodeShrinkageAutoencoder(max_epochs=3, batch_size=64, random_state=0)
    assert clone(model).get_params()["shrinkage"] == 0.1
    float32_batching = ("float32 scores move by one ulp with the batch they are scored in "
                        "(tests/test_common.py)")
    check_estimator(model, expected_failed_checks={
        "check_methods_subset_invariance": float32_batching,
        "check_methods_sample_order_invariance": float32_batching,
    })
