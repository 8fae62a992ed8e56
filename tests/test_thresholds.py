"""Thresholds: quantile, control chart, POT/SPOT, best F1, make_threshold."""

import numpy as np
import pytest

from aepipe.thresholds import (
    BestF1Threshold,
    CentredControlChartThreshold,
    ContaminationThreshold,
    ControlChartThreshold,
    POTThreshold,
    SPOTThreshold,
    make_threshold,
)


def test_contamination_quantile():
    t = ContaminationThreshold(contamination=0.1).fit(np.arange(101.0))
    assert t.threshold_ == pytest.approx(90.0)
    assert (t.predict(np.arange(101.0)) == -1).sum() == 10


def test_control_chart_nonnegative_and_signed():
    assert ControlChartThreshold(quantile=1.0, factor=1.5).fit([0, 1, 2.0]).threshold_ == 3.0
    # Signed scores: the factor widens the distance above the median.
    t = ControlChartThreshold(quantile=1.0, factor=2.0).fit([-3.0, -2.0, -1.0])
    assert t.threshold_ == pytest.approx(0.0)


def test_centred_control_chart_scales_the_spread_above_the_median():
    scores = 100.0 + np.arange(101.0)  # a floor of 100, median 150, max 200
    assert ControlChartThreshold(quantile=1.0, factor=2.0).fit(scores).threshold_ == 400.0
    centred = ControlChartThreshold(quantile=1.0, factor=2.0, center="median").fit(scores)
    assert centred.threshold_ == 250.0
    assert CentredControlChartThreshold(quantile=1.0, factor=2.0).fit(scores).threshold_ == 250.0
    assert make_threshold("centred_control_chart").center == "median"


def test_pot_recovers_exponential_tail_quantile():
    scores = np.random.default_rng(0).exponential(size=50_000)
    t = POTThreshold(q=1e-4, level=0.98).fit(scores)
    # True 1 - 1e-4 quantile of Exp(1) is log(1e4) = 9.21; the GPD shape is ~0.
    assert t.threshold_ == pytest.approx(np.log(1e4), rel=0.1)
    assert abs(t.gamma_) < 0.1
    assert t.threshold_ > scores.max() * 0.8


def test_pot_heavy_tail_shape_positive():
    scores = np.random.default_rng(1).pareto(3.0, size=20_000)
    assert POTThreshold(q=1e-3).fit(scores).gamma_ > 0.15


def test_spot_updates_on_peaks_and_skips_alarms():
    rng = np.random.default_rng(0)
    spot = SPOTThreshold(q=1e-3).fit(rng.exponential(size=2000))
    first = spot.threshold_
    alarms, thresholds = spot.run(np.r_[rng.exponential(size=300), 100.0])
    assert alarms[-1] and not alarms[:-1].any() or alarms[:-1].sum() <= 2
    assert thresholds[0] == first
    assert spot.n_samples_ >= 2000 + 300 - 2
    assert spot.threshold_ != first  # new peaks moved it


def test_best_f1_threshold():
    t = BestF1Threshold().fit([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 1, 1, 1])
    assert t.best_f1_ == 1.0
    assert 0.2 < t.threshold_ < 0.3
    assert (t.predict([0.25, 0.35]) == [1, -1]).all()


@pytest.mark.parametrize("y, match", [(None, "needs labels"), ([0, 0, 0], "no anomaly"),
                                      ([0, 2, 1], "only 0")])
def test_best_f1_errors(y, match):
    with pytest.raises(ValueError, match=match):
        BestF1Threshold().fit([0.1, 0.2, 0.3], y)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="non-finite"):
        ContaminationThreshold().fit([0.0, np.nan])
    with pytest.raises(ValueError, match="empty"):
        ControlChartThreshold().fit([])
    with pytest.raises(ValueError, match="contamination"):
        ContaminationThreshold(contamination=0.9).fit([1.0, 2.0])


def test_make_threshold():
    assert isinstance(make_threshold("pot"), POTThreshold)
    original = ControlChartThreshold(factor=2.0).fit([1.0, 2.0])
    fresh = make_threshold(original)
    assert fresh is not original and fresh.factor == 2.0 and not hasattr(fresh, "threshold_")
    with pytest.raises(ValueError, match="not a known threshold"):
        make_threshold("nope")
    with pytest.raises(TypeError, match="must be one of"):
        make_threshold(3)


def test_thresholds_do_not_import_torch():
    import subprocess
    import sys

    code = "import aepipe.thresholds, sys; print('torch' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"
