"""The gate's two-sample tests (harness.checks.stats), by simulation with fixed seeds.

Two runs of a correct proxy must not differ more often than the test's alpha (noise is not a
difference), and a real difference must show. A simulated rate fails only when a one-sided
binomial test at level BAND rejects the claim, as in test_stats_quality.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.checks.stats import homogeneity_test, rank_shift_test

RUNS = 3_000
BAND = 1e-3


def _at_most(hits: int, runs: int, p: float) -> bool:
    """Whether ``hits`` in ``runs`` is consistent with a rate of at most ``p``."""
    return bool(sps.binomtest(hits, runs, p, alternative="greater").pvalue >= BAND)


def _at_least(hits: int, runs: int, p: float) -> bool:
    return bool(sps.binomtest(hits, runs, p, alternative="less").pvalue >= BAND)


@pytest.mark.parametrize(
    ("shares", "n", "alpha"),
    [((0.75, 0.25), 2_000, 0.01), ((0.5, 0.3, 0.2), 5_000, 0.05), ((0.75, 0.25), 17_467, 0.001)],
)
def test_homogeneity_false_alarms_at_most_alpha(
    shares: tuple[float, ...], n: int, alpha: float
) -> None:
    rng = np.random.default_rng(20261201)
    names = [f"b{i}" for i in range(len(shares))]
    hits = 0
    for _ in range(RUNS):
        a, b = rng.multinomial(n, shares), rng.multinomial(n, shares)
        verdict = homogeneity_test(
            dict(zip(names, a, strict=True)), dict(zip(names, b, strict=True)), alpha
        )
        hits += verdict.differs
    print(f"figure: homogeneity false alarms {hits}/{RUNS} at alpha {alpha}")
    assert _at_most(hits, RUNS, alpha)
    # ... and not far below it either: the test is calibrated, not blind.
    assert _at_least(hits, RUNS, alpha / 3) or alpha * RUNS < 10


def test_homogeneity_sees_a_changed_split() -> None:
    rng = np.random.default_rng(7)
    caught = sum(
        homogeneity_test(
            dict(zip("ab", rng.multinomial(17_467, (0.75, 0.25)), strict=True)),
            dict(zip("ab", rng.multinomial(17_467, (0.72, 0.28)), strict=True)),
            0.001,
        ).differs
        for _ in range(500)
    )
    print(f"figure: 75/25 vs 72/28 at n=17,467 caught {caught}/500")
    assert _at_least(caught, 500, 0.99)


def test_homogeneity_edges() -> None:
    assert not homogeneity_test({"a": 10}, {"a": 12}, 0.01).differs  # one backend: nothing to test
    # A backend that answers in one run only is a difference like any other.
    moved = homogeneity_test({"a": 500, "b": 500}, {"a": 500, "b": 400, "c": 100}, 0.001)
    assert moved.differs and moved.backends == ("a", "b", "c")
    with pytest.raises(ValueError, match="at least one counted answer"):
        homogeneity_test({"a": 0}, {"a": 3}, 0.01)


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda rng, k: rng.uniform(50, 1_300, k), id="convergence-like"),
        pytest.param(lambda rng, k: np.where(rng.random(k) < 0.4, 2_000.0, 0.0), id="bimodal"),
        pytest.param(lambda rng, k: rng.integers(1_975, 2_010, k).astype(float), id="ties"),
    ],
)
def test_rank_shift_false_alarms_at_most_alpha(draw: object) -> None:
    rng = np.random.default_rng(11)
    alpha = 0.01
    hits = sum(
        rank_shift_test(draw(rng, 5), draw(rng, 5), alpha).differs  # type: ignore[operator]
        for _ in range(RUNS)
    )
    print(f"figure: rank shift false alarms {hits}/{RUNS} at alpha {alpha}")
    assert _at_most(hits, RUNS, alpha)


def test_rank_shift_is_the_exact_mann_whitney() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = rng.normal(0, 1, 5), rng.normal(0.5, 1, 6)
        ours = rank_shift_test(a, b, 0.05).p_value
        theirs = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact").pvalue
        assert ours == pytest.approx(theirs, rel=1e-9)


def test_rank_shift_sees_a_shift_beyond_the_spread() -> None:
    separated = rank_shift_test([0, 0, 1, 0, 2], [1_990, 2_004, 1_985, 2_001, 1_999], 0.01)
    assert separated.differs and separated.decidable
    assert separated.p_value == pytest.approx(2 / 252)
    overlapping = rank_shift_test([0, 0, 2_100, 0, 2_050], [0, 2_000, 0, 2_125, 2_090], 0.01)
    assert not overlapping.differs
    assert rank_shift_test([5, 5, 5], [5, 5, 5], 0.01).p_value == 1.0
    one = rank_shift_test([0], [2_000], 0.01)
    assert not one.decidable and not one.differs and "cannot show" in one.summary
