"""scikit-learn's estimator checks over every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from aepipe import (
    Autoencoder,
    AutoencoderEnsemble,
    ContractiveAutoencoder,
    Denoiser,
    DenoisingAutoencoder,
    PCADetector,
    SparseAutoencoder,
    VariationalAutoencoder,
)

FAST = dict(max_epochs=3, batch_size=64, random_state=0)

ESTIMATORS = [
    Autoencoder(**FAST),
    DenoisingAutoencoder(**FAST),
    SparseAutoencoder(**FAST),
    ContractiveAutoencoder(**FAST),
    VariationalAutoencoder(**FAST),
    VariationalAutoencoder(n_score_samples=4, **FAST),
    PCADetector(),
    Denoiser(DenoisingAutoencoder(**FAST)),
    AutoencoderEnsemble(n_estimators=3, training_steps=20, random_state=0),
]

# Every expected failure needs a written reason.
FLOAT32_BATCHING = (
    "The network computes in float32 and BLAS picks different kernels for different batch "
    "sizes, so a record's score can move by one float32 ulp (~1e-7 relative) when it is "
    "scored in a different batch; the check's tolerance is 1e-7. Same input, same batch: "
    "bit-identical (tests/test_estimators.py::test_reproducible_fit_and_scores)."
)
MONTE_CARLO = (
    "With n_score_samples > 0 the score is a seeded Monte-Carlo estimate whose draws are "
    "taken over the batch, so a record's estimate depends on the batch it is scored in "
    "(n_score_samples=0, the default, is deterministic per record)."
)


def _expected_failures(estimator):
    if isinstance(estimator, PCADetector):
        return {}
    failures = {
        "check_methods_subset_invariance": FLOAT32_BATCHING,
        "check_methods_sample_order_invariance": FLOAT32_BATCHING,
    }
    if getattr(estimator, "n_score_samples", 0):
        failures = {name: MONTE_CARLO for name in failures}
    return failures


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
