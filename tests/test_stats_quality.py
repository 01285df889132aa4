"""Statistical quality of harness.checks.stats, by simulation with fixed seeds.

What must hold (issue 4, "Must show"): a correct proxy raises false alarms at no more than the
configured alpha, a proxy off by the declared minimum deviation is caught with at least the
configured power, the sequential test stops by half the planned N when the split is 5 points
off, and the checks other suites use (the "anchors") let wrong splits through where ours do not.

A simulated rate is judged against the binomial band of the claimed probability: it fails only
if a one-sided binomial test at level BAND rejects the claim, so a correct implementation fails
with probability about BAND per assertion, whatever the seed. Proxies are simulated as i.i.d.
multinomial draws (the tests' null model; a real Traefik is more regular, see test_stats.py).
Everything is vectorised over runs and batches; each scenario takes about a second.

Run with ``-s`` to see the measured figures (lines starting with "figure:").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats as sps

from harness.checks.stats import (
    Plan,
    SequentialSplitTest,
    chi_square_test,
    dirichlet_multinomial_log_e,
    family_alpha,
    plan_sample_size,
)

pytestmark = pytest.mark.slow

RUNS = 4_000  # the issue asks for >= 2,000; 4,000 narrows the bands and still runs in seconds
BAND = 1e-3
BATCH = 100  # responses between two looks of the sequential test

IntArray = npt.NDArray[np.int64]


def at_most(probability: float, hits: int, runs: int = RUNS) -> bool:
    """hits/runs is consistent with a rate of at most ``probability``."""
    return bool(sps.binom.sf(hits - 1, runs, probability) > BAND)


def at_least(probability: float, hits: int, runs: int = RUNS) -> bool:
    """hits/runs is consistent with a rate of at least ``probability``."""
    return bool(sps.binom.cdf(hits, runs, probability) > BAND)


def figure(text: str) -> None:
    print(f"\nfigure: {text}")


def fixed_rejections(
    plan: Plan, true_shares: Sequence[float] | npt.NDArray[np.float64], rng: np.random.Generator
) -> int:
    """Runs of the fixed-N test (the real chi_square_test, N = plan.n_fixed) that reject."""
    draws = rng.multinomial(plan.n_fixed, true_shares, size=RUNS)
    return sum(not chi_square_test(x, plan.expected, plan.alpha).passed for x in draws)


def sequential_runs(
    plan: Plan,
    true_shares: Sequence[float] | npt.NDArray[np.float64],
    rng: np.random.Generator,
    *,
    cap: int | None = None,
    runs: int = RUNS,
) -> tuple[npt.NDArray[np.bool_], IntArray, IntArray]:
    """(rejected, n at stop, the batches drawn) of ``runs`` sequential tests, looking every BATCH.

    The same decision rule as SequentialSplitTest.update, on the kernel it uses, for all runs and
    looks at once. Looking after every batch is allowed because the e-value is a test martingale
    (Ville's inequality bounds the false-alarm rate over all looks together).
    """
    cap = cap or plan.n_sequential
    looks = -(-cap // BATCH)
    shares = np.asarray(plan.expected)
    positive = shares > 0
    batches = rng.multinomial(BATCH, true_shares, size=(runs, looks))
    cumulative = batches.cumsum(axis=1)
    p = shares[positive] / shares[positive].sum()
    log_e = dirichlet_multinomial_log_e(cumulative[..., positive], p, plan.concentration)
    crossed = log_e >= np.log(1.0 / plan.alpha)
    if not positive.all():
        crossed |= cumulative[..., ~positive].sum(axis=-1) > 0
    rejected = crossed.any(axis=1)
    stop = np.where(rejected, crossed.argmax(axis=1) + 1, looks) * BATCH
    return rejected, stop, batches


# --------------------------------------------------------------------------- false alarms


@pytest.mark.parametrize("split", [(75, 25), (50, 30, 20)])
def test_false_alarm_rate_of_a_correct_proxy_is_at_most_alpha(split: tuple[int, ...]) -> None:
    alpha = 0.05  # large enough for the band to be informative with 2,000 runs
    plan = plan_sample_size(split, alpha=alpha, power=0.9)
    rng = np.random.default_rng(20240401)

    fixed = fixed_rejections(plan, plan.expected, rng)
    rejected, _, _ = sequential_runs(plan, plan.expected, rng)
    sequential = int(rejected.sum())
    figure(
        f"{split} correct proxy, alpha {alpha}: fixed-N false alarms {fixed / RUNS:.4f} "
        f"(N={plan.n_fixed:,}), sequential {sequential / RUNS:.4f} "
        f"(cap {plan.n_sequential:,}, a look every {BATCH})"
    )
    assert at_most(alpha, fixed)
    # The chi-square approximation is good here: not conservative either.
    assert at_least(alpha, fixed)
    # Ville's bound; the sequential test is conservative (about alpha/2 measured), that is fine.
    assert at_most(alpha, sequential)


def test_simulated_sequential_runs_match_the_class() -> None:
    """The vectorised simulation above makes the same decisions as SequentialSplitTest."""
    plan = plan_sample_size([75, 25], alpha=0.05, power=0.9)
    rng = np.random.default_rng(11)
    off = (0.735, 0.265)  # near the edge of detection: both outcomes occur
    rejected, stop, batches = sequential_runs(plan, off, rng, runs=60)
    for run in range(60):
        test = SequentialSplitTest.from_plan(plan)
        state = test.state
        look = 0
        while not state.done:
            state = test.update(batches[run, look])
            look += 1
        assert (state.status == "rejected") == rejected[run]
        assert state.n == stop[run]
    assert 0 < rejected.sum() < 60  # both outcomes were exercised


# --------------------------------------------------------------------------- power


@pytest.mark.parametrize("split", [(75, 25), (50, 30, 20)])
def test_a_split_off_by_the_minimum_deviation_is_caught_with_the_planned_power(
    split: tuple[int, ...],
) -> None:
    alpha, power = 0.01, 0.99
    plan = plan_sample_size(split, alpha=alpha, power=power, min_deviation=0.02)
    rng = np.random.default_rng(31337)
    worst = np.array(plan.alternative)
    assert np.abs(worst - np.array(plan.expected)).max() == pytest.approx(0.02)

    fixed = fixed_rejections(plan, worst, rng)
    rejected, stop, _ = sequential_runs(plan, worst, rng)
    capped_at_fixed, _, _ = sequential_runs(plan, worst, rng, cap=plan.n_fixed)
    figure(
        f"{split} proxy at {tuple(round(float(s), 4) for s in worst)} (2 points off, worst case), "
        f"alpha {alpha}, power {power}: fixed-N detects {fixed / RUNS:.4f} (N={plan.n_fixed:,}); "
        f"sequential {rejected.mean():.4f} (cap {plan.n_sequential:,}, median stop "
        f"{int(np.median(stop)):,}); sequential capped at the fixed N {capped_at_fixed.mean():.4f}"
    )
    assert at_least(power, fixed)
    assert at_least(power, int(rejected.sum()))


def test_the_mirror_image_of_the_two_way_worst_case_is_caught_too() -> None:
    plan = plan_sample_size([75, 25], alpha=0.01, power=0.99)
    other = (0.77, 0.23) if plan.alternative[0] < 0.75 else (0.73, 0.27)
    rng = np.random.default_rng(4242)
    fixed = fixed_rejections(plan, other, rng)
    figure(f"75/25 proxy at {other}: fixed-N detects {fixed / RUNS:.4f} (N={plan.n_fixed:,})")
    assert at_least(0.99, fixed)


@pytest.mark.parametrize(
    ("split", "proxy"),
    [
        ((75, 25), (0.70, 0.30)),
        # The 50 % backend 5 points short, the others absorbing it in proportion.
        ((50, 30, 20), (0.45, 0.33, 0.22)),
    ],
)
def test_sequential_stops_by_half_the_planned_n_when_five_points_off(
    split: tuple[int, ...], proxy: tuple[float, ...]
) -> None:
    # The defaults of a nightly run: 0.001 per run over 5 checks, power 0.99, 2 points.
    plan = plan_sample_size(split, alpha=family_alpha(n_checks=5))
    rng = np.random.default_rng(5)
    rejected, stop, _ = sequential_runs(plan, proxy, rng)
    median = float(np.median(stop))
    figure(
        f"{split} proxy at {proxy} (5 points off), alpha {plan.alpha:.3g}: sequential rejects "
        f"{rejected.mean():.4f}, median stop {int(median):,} "
        f"({median / plan.n_fixed:.2f} of the fixed N {plan.n_fixed:,}), "
        f"95th percentile {int(np.percentile(stop, 95)):,}"
    )
    assert rejected.all()
    assert median <= plan.n_fixed / 2


# --------------------------------------------------------------------------- the anchors


def test_gateway_api_style_check_passes_a_wrong_split_that_ours_rejects() -> None:
    """Declared 70/30/0, proxy 75/25/0.

    Gateway API conformance (HTTPRouteWeight): 500 requests, every backend within ±5 points of
    its share, the check passes if any of 10 attempts passes. Ours: the default plan for the
    same declaration, one fixed-N chi-square.
    """
    declared = (70, 30, 0)
    proxy = (0.75, 0.25, 0.0)
    rng = np.random.default_rng(1970)

    attempts = rng.multinomial(500, proxy, size=(RUNS, 10)) / 500
    within = np.abs(attempts - np.array(declared) / 100) <= 0.05 + 1e-12
    anchor_passes = within.all(axis=-1).any(axis=-1)

    plan = plan_sample_size(declared, alpha=family_alpha(n_checks=5))
    ours = fixed_rejections(plan, proxy, rng)
    correct = fixed_rejections(plan, np.array(declared) / 100, rng)
    figure(
        f"70/30 declared, 75/25 proxy: Gateway-style check passes {anchor_passes.mean():.4f} of "
        f"runs; ours (N={plan.n_fixed:,}, alpha {plan.alpha:.3g}) rejects {ours / RUNS:.4f}, "
        f"and rejects a correct 70/30 proxy in {correct / RUNS:.4f}"
    )
    assert anchor_passes.mean() > 0.99
    assert ours == RUNS
    assert at_most(plan.alpha, correct)


def test_re_running_a_chi_square_until_it_rejects_inflates_false_alarms() -> None:
    """The naive sequential check (a chi-square every 100 requests) against the e-value test.

    Both look at the same draws of a correct proxy after every batch and stop at the first
    rejection; only the e-value keeps its promise.
    """
    alpha = 0.01
    plan = plan_sample_size([75, 25], alpha=alpha, power=0.9)
    rng = np.random.default_rng(99)
    rejected, _, batches = sequential_runs(plan, plan.expected, rng)
    cumulative = batches.cumsum(axis=1).astype(np.float64)
    n = cumulative.sum(axis=-1, keepdims=True)
    expected = n * np.asarray(plan.expected)
    pearson = ((cumulative - expected) ** 2 / expected).sum(axis=-1)
    naive = (sps.chi2.sf(pearson, df=1) < alpha).any(axis=1)
    # The same statistic as the harness's test at the last look.
    last = chi_square_test(batches[0].sum(axis=0), plan.expected, alpha)
    assert last.statistic == pytest.approx(pearson[0, -1])
    figure(
        f"correct 75/25 proxy, a look every {BATCH} up to {batches.shape[1] * BATCH:,}: "
        f"naive repeated chi-square false alarms {naive.mean():.4f}, e-value {rejected.mean():.4f}"
        f" (alpha {alpha})"
    )
    assert naive.mean() > 5 * alpha
    assert at_most(alpha, int(rejected.sum()))
