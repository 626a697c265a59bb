"""Group z-scores and non-finite handling, against hand-computed values."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from simulpo.rewards.group import replace_nonfinite, zscore


def test_zscore_uses_the_population_std():
    # mean 4, deviations -3, -1, 4 -> population variance (9 + 1 + 16) / 3 = 26 / 3
    z = zscore([1.0, 3.0, 8.0])
    np.testing.assert_allclose(z, np.array([-3.0, -1.0, 4.0]) / math.sqrt(26 / 3))


def test_zscore_of_two_values_is_minus_one_and_one():
    np.testing.assert_allclose(zscore([5.0, 2.0]), [1.0, -1.0])


@pytest.mark.parametrize(
    "values", [[7.0, 7.0, 7.0], [0.1, 0.1, 0.1], [3.0], [-2.5] * 8, [0.0, 0.0]]
)
def test_zscore_does_not_divide_when_the_std_is_zero(values):
    # [0.1] * 3: the float mean is not exactly 0.1; the rounding must not become +-1
    z = zscore(values)
    assert z.shape == (len(values),)
    assert np.all(z == 0.0)


def test_zscore_keeps_tiny_but_real_spreads():
    np.testing.assert_allclose(zscore([1e-12, 3e-12]), [-1.0, 1.0])


def test_zscore_refuses_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        zscore([1.0, float("nan")])


def test_nan_quality_becomes_the_groups_worst_and_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="simulpo.rewards.group"):
        x, n = replace_nonfinite(
            [50.0, float("nan"), 80.0, float("inf")],
            higher_is_better=True,
            fallback=0.0,
            name="quality",
        )
    assert n == 2
    np.testing.assert_array_equal(x, [50.0, 50.0, 80.0, 50.0])  # even +inf counts as broken
    assert "2 of 4 episodes" in caplog.text and "quality" in caplog.text


def test_nan_latency_becomes_the_groups_largest():
    x, n = replace_nonfinite(
        [2.0, float("-inf"), 5.0], higher_is_better=False, fallback=99.0, name="latency"
    )
    assert n == 1
    np.testing.assert_array_equal(x, [2.0, 5.0, 5.0])


def test_all_non_finite_uses_the_fallback_per_episode():
    x, n = replace_nonfinite(
        [float("nan"), float("nan")], higher_is_better=False, fallback=[4.0, 6.0], name="latency"
    )
    assert n == 2
    np.testing.assert_array_equal(x, [4.0, 6.0])


def test_finite_values_pass_untouched_and_silently(caplog):
    with caplog.at_level(logging.WARNING):
        x, n = replace_nonfinite([1.0, 2.0], higher_is_better=True, fallback=0.0, name="quality")
    assert n == 0 and caplog.text == ""
    np.testing.assert_array_equal(x, [1.0, 2.0])
