"""The detector aepipe recommends for a table it knows nothing about."""

from __future__ import annotations

from ._ensemble import AutoencoderEnsemble


def make_default_detector(**overrides) -> AutoencoderEnsemble:
    """Return aepipe's recommended anomaly detector for an unknown table.

    An :class:`~aepipe.estimators.AutoencoderEnsemble` with its defaults: eight
    small autoencoders with bottlenecks spanning ``d / 16`` to ``d / 2``,
    median/IQR input scaling with logarithmic tails (heavy tails and constant
    columns are harmless), two-valued columns (flags, one-hot levels) as
    Bernoulli variables, columns with a point mass (usually 0) scored only
    off it, a loss that ignores each batch's 20 % worst
    records after a warm-up (the model does not learn the anomalies it is
    fitted on), a fixed budget of 400 gradient steps of 64 records, and a
    likelihood score per member -- each column's reconstruction error
    relative to its noise variance, plus how unusual the record's code is --
    normalised per member before averaging. It follows scikit-learn's
    outlier-detector contract (``score_samples`` higher = more normal,
    ``predict`` +/-1, ``offset_`` from ``contamination``).

    Why this and not a single autoencoder: on a new table the right
    bottleneck and the share of anomalies in the training data are unknown,
    and a plain autoencoder is sensitive to both (too wide a code or too
    many epochs and it reconstructs the anomalies too). Averaging over code
    sizes, trimming the loss and training by a fixed step budget remove
    those choices; no setting was tuned per dataset. Why the likelihood
    score: a squared reconstruction error weighs every column alike and is
    blind to records that are extreme along the structure the nets learned
    (they reconstruct well); the per-column noise variance and the code's
    likelihood fix both, which is what made the ensemble clearly better than
    IsolationForest on ADBench (mean ROC-AUC over 21 sets and 3 seeds 0.830
    with the plain squared error, 0.840 with the likelihood score, against
    IsolationForest's 0.810). Those sets were also the ones it was shaped
    on; on the fixed halves of ``pipelines/benchmark_adbench.py`` (the 21
    classical sets plus 21 tables of 512-value image embeddings, seed 0,
    against the panel at its libraries' defaults) it measures:

    ====  ============================  ====================  ====================
    half  this detector: ROC-AUC / AP   PyOD kNN              IsolationForest
    ====  ============================  ====================  ====================
    A     0.803 / 0.489 (rank 2.84)     0.723 / 0.375 (3.66)  0.761 / 0.451 (4.93)
    B     0.826 / 0.589 (rank 2.08)     0.786 / 0.524 (3.10)  0.756 / 0.534 (5.35)
    ====  ============================  ====================  ====================

    Over seeds 0-2 (the issue's protocol): A 0.800 / 0.475 (rank 2.59;
    kNN 0.724 / 0.376, IsolationForest 0.757 / 0.450), B 0.834 / 0.610
    (rank 2.05; kNN 0.799 / 0.546, IsolationForest 0.768 / 0.550). It
    leads the classical tables on both halves and the image embeddings of
    half B (0.798 against kNN's 0.774); on those of half A kNN leads (0.742
    against 0.738). Scoring a column constant in training as a point mass
    with nothing off it (0 while it keeps its value; 170-400 of an MVTec
    table's 512 features are 0 on every normal image) raised the image
    embeddings from 0.733 (A) and 0.780 (B); the classical tables are
    bit-identical.

    Why 400 steps of 64 records: the number of updates matters more than
    their size. Decided on half A (seeds 0-2, this detector alone, ROC-AUC /
    AP): 200 steps of up to 256 records (the earlier budget) 0.793 / 0.470;
    100 of them 0.785 / 0.459; 200 steps of 64 0.794 / 0.466; 400 of 32
    0.796 / 0.470; 400 of 64 0.799 / 0.473; 800 of 64 0.800 / 0.478 at
    twice the cost. The gain is broad (15 of 22 tables up) and largest
    where kNN leads (``20_letter``, ``MVTec-AD_screw``, ``12_fault``).
    Confirmed once on half B: 0.816 / 0.586 -> 0.829 / 0.605. The price
    is fit time: about 1.2-1.5 times the earlier budget's, 0.7-1.5 times
    PyOD's AutoEncoder's at its defaults and 16-19 times IsolationForest's.

    Adding kNN distances (in input or code space, all or 2,000 subsampled
    references, k = 1, 5, 10), a full-covariance code likelihood,
    tail-probability normalisation of the two terms, or a quarter of the
    training steps did not raise half A's mean ROC-AUC by more than 0.003,
    and each lowered its AP, so none is used. Nor did, on half A (seed 0,
    with the earlier budget, which gave 0.791 / 0.487): training each
    member by the likelihood it is scored with (squared errors over running
    per-column noise variances; 0.780-0.787 / 0.435-0.442), denoising
    training (Gaussian noise of 0.1 or 0.3, or masking 10 or 25 % of the
    inputs; 0.772-0.792 / 0.456-0.484) or members trimmed by fractions
    spread over 0.02-0.35 (0.790-0.792 / 0.476-0.479). Run
    ``python pipelines/benchmark_adbench.py --half A`` (or ``B``) to
    reproduce the table.

    Why two-valued and point-mass columns are not Gaussian: the development
    tables have almost none of either, tables in the wild are full of them
    (flags, one-hot levels, amounts that are usually 0), and as Gaussian
    columns both cost about ``1 / (2 p)`` nats whenever they leave their
    usual value (``p``: how often they do), so normal records looked
    anomalous. The two models were decided on half A and confirmed on half
    B, on the tables as they are (before: A 0.786 / 0.466, B 0.791 / 0.545;
    most of the gain is on tables with point-mass columns: ``35_SpamBase``
    0.560 -> 0.707, the image embeddings' ReLU zeros) and with ``max(8,
    d)`` columns appended to each classical table (``--append flags``: set
    at random in 0.2-20 % of records; ``indicators``: marking a rare value
    of a random column; ``zero-inflated``: 0 except as often as a flag, then
    a log-normal amount), seed 0, ROC-AUC / AP:

    ====  =============  =============  =============  ==================
    half  appended       this detector  as Gaussians   best peer
    ====  =============  =============  =============  ==================
    A     flags          0.849 / 0.547  0.767 / 0.240  ECOD 0.804 / 0.412
    A     indicators     0.860 / 0.508  0.826 / 0.388  ECOD 0.821 / 0.402
    A     zero-inflated  0.856 / 0.524  0.790 / 0.268  ECOD 0.797 / 0.381
    B     flags          0.807 / 0.551  0.705 / 0.315  kNN 0.765 / 0.459
    B     indicators     0.824 / 0.568  0.738 / 0.396  kNN 0.781 / 0.470
    B     zero-inflated  0.813 / 0.523  0.717 / 0.319  IF 0.752 / 0.517
    ====  =============  =============  =============  ==================

    (both columns with the earlier budget of 200 steps of up to 256
    records; with 400 steps of 64 this detector measured A 0.856 / 0.513,
    0.862 / 0.507, 0.857 / 0.504 and B 0.834 / 0.555, 0.849 / 0.574,
    0.831 / 0.516; since records are trimmed by their NLL in excess of what
    their two-valued and categorical values cost by frequency alone, so that
    a rarely set flag alone does not get a record trimmed, A 0.857 / 0.538,
    0.862 / 0.541, 0.858 / 0.504 and B 0.836 / 0.554, 0.851 / 0.593,
    0.831 / 0.516).

    ``two_valued="gaussian", point_mass="gaussian"`` restores the old model.

    Parameters
    ----------
    **overrides
        Any :class:`~aepipe.estimators.AutoencoderEnsemble` parameter, e.g.
        ``random_state=0`` or ``contamination=0.05``.

    Returns
    -------
    detector : AutoencoderEnsemble
        Unfitted.

    Examples
    --------
    >>> import numpy as np
    >>> from aepipe import make_default_detector
    >>> X = np.random.default_rng(0).normal(size=(300, 5))
    >>> detector = make_default_detector(random_state=0).fit(X)
    >>> detector.score_samples(X).shape
    (300,)
    """
    return AutoencoderEnsemble(**overrides)
