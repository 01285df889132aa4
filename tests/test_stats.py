"""harness.checks.stats: planning, the tests' arithmetic, validation and the evidence.

The statistical quality (false-alarm rates, power, stopping times) is simulated in
tests/test_stats_quality.py; these tests are fast and exact.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness.checks.stats import (
    SequentialSplitTest,
    Verdict,
    chi_square_test,
    dirichlet_multinomial_log_e,
    error_rate_check,
    family_alpha,
    max_count_deviation,
    plan_sample_size,
    zero_weight_bound,
)
from harness.errors import ConfigError


def strict_json(obj: object) -> str:
    """Serialises like the results writer: strict JSON, no NaN or Infinity."""
    return json.dumps(obj, allow_nan=False)


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("alpha", "power", "reference"),
    [
        # The planned N to tell 80/20 from 78/22.
        (0.05, 0.8, 3_140),
        (1e-3, 0.99, 12_620),
    ],
)
def test_plan_reproduces_reference_sizes(alpha: float, power: float, reference: int) -> None:
    plan = plan_sample_size([80, 20], alpha=alpha, power=power)
    assert plan.n_ncx2 == pytest.approx(reference, rel=0.01)
    # The used size corrects for the variance under the alternative: never smaller, a few % more.
    assert plan.n_ncx2 <= plan.n_fixed <= 1.03 * plan.n_ncx2
    assert plan.power_fixed >= power
    assert plan.power_at(plan.n_fixed - 50) < power
    assert plan.df == 1
    assert plan.effect_w2 == pytest.approx(0.02**2 / (0.8 * 0.2))


def test_plan_worst_case_is_the_share_nearest_one_half_spread_in_proportion() -> None:
    p = np.array([0.5, 0.3, 0.2])
    plan = plan_sample_size(p, alpha=0.01, min_deviation=0.02)
    q = np.array(plan.alternative)
    moved = np.abs(q - p)
    assert moved.max() == pytest.approx(0.02)
    assert int(np.argmax(moved)) == 0  # the 50 % backend
    assert q.sum() == pytest.approx(1.0)
    # The others absorb the shift in proportion to their shares.
    assert (q[1:] - p[1:]) / p[1:] == pytest.approx(np.full(2, (q[1] - p[1]) / p[1]))
    assert plan.effect_w2 == pytest.approx(0.02**2 / (0.5 * 0.5))
    # No single-pair move of 2 points is harder to see than the planned worst case.
    for i, j in itertools.permutations(range(3), 2):
        pair_w2 = 0.02**2 * (1 / p[i] + 1 / p[j])
        assert plan.effect_w2 <= pair_w2
    # And the plan has the power it claims against its own alternative (exact for this form).
    assert plan.power_at(plan.n_fixed) == pytest.approx(plan.power_fixed)
    assert plan.power_fixed >= plan.power


def test_plan_grows_with_stricter_requirements() -> None:
    base = plan_sample_size([75, 25], alpha=0.01, power=0.9, min_deviation=0.02)
    finer = plan_sample_size([75, 25], alpha=0.01, power=0.9, min_deviation=0.01)
    stricter = plan_sample_size([75, 25], alpha=0.001, power=0.9, min_deviation=0.02)
    stronger = plan_sample_size([75, 25], alpha=0.01, power=0.99, min_deviation=0.02)
    assert finer.n_fixed == pytest.approx(4 * base.n_fixed, rel=0.05)  # n ~ 1/d^2
    assert stricter.n_fixed > base.n_fixed
    assert stronger.n_fixed > base.n_fixed
    # Anytime validity costs samples when the test runs to the cap.
    for plan in (base, finer, stricter, stronger):
        assert plan.n_fixed < plan.n_sequential < 2 * plan.n_fixed


def test_plan_for_the_tutorial_split_at_the_defaults() -> None:
    alpha = family_alpha(n_checks=5)
    plan = plan_sample_size([75, 25], alpha=alpha)
    assert plan.alpha == pytest.approx(2e-4)
    assert plan.power == 0.99
    assert plan.min_deviation == 0.02
    assert 15_000 < plan.n_fixed < 20_000
    assert plan.n == plan.n_fixed
    seq = plan_sample_size([75, 25], alpha=alpha, sequential=True)
    assert seq.n == seq.n_sequential == plan.n_sequential
    data = plan.to_dict()
    assert data["n"] == plan.n_fixed
    assert strict_json(data)
    assert f"{plan.n_fixed:,}" in plan.summary


def test_plan_with_weight_zero_needs_a_hit_to_show_up() -> None:
    plan = plan_sample_size([70, 30, 0], alpha=0.01, power=0.99, min_deviation=0.02)
    assert plan.n_zero_weight == math.ceil(math.log(0.01) / math.log(0.98))
    assert plan.alternative[2] == 0.0
    assert plan.df == 1
    only = plan_sample_size([1, 0], alpha=0.01, power=0.99, min_deviation=0.02)
    assert only.df == 0
    assert only.n_fixed == only.n_zero_weight
    assert 1 - 0.98**only.n_fixed >= 0.99 > 1 - 0.98 ** (only.n_fixed - 1)


def test_plan_keeps_expected_counts_large_enough_for_the_chi_square() -> None:
    plan = plan_sample_size([999, 1], alpha=0.05, power=0.8, min_deviation=0.4)
    assert plan.n_fixed * 0.001 >= 5


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"expected": [75, 25], "alpha": 0.0}, "`alpha`"),
        ({"expected": [75, 25], "alpha": 1.0}, "`alpha`"),
        ({"expected": [75, 25], "alpha": -0.1}, "`alpha`"),
        ({"expected": [75, 25], "alpha": 0.05, "power": 0.05}, "`power`"),
        ({"expected": [75, 25], "alpha": 0.05, "power": 0.01}, "`power`"),
        ({"expected": [75, 25], "alpha": 0.05, "power": 1.0}, "`power`"),
        ({"expected": [0, 0], "alpha": 0.05}, "sum to zero"),
        ({"expected": [75, -25], "alpha": 0.05}, "negative"),
        ({"expected": [100], "alpha": 0.05}, "at least two"),
        ({"expected": [75, float("nan")], "alpha": 0.05}, "finite"),
        ({"expected": [75, 25], "alpha": 0.05, "min_deviation": 0.0}, "`min_deviation`"),
        ({"expected": [75, 25], "alpha": 0.05, "min_deviation": 0.5}, "`min_deviation`"),
        ({"expected": [75, 25], "alpha": 0.05, "max_requests": 0}, "`max_requests`"),
    ],
)
def test_plan_refuses_bad_parameters(kwargs: dict[str, object], fragment: str) -> None:
    expected = kwargs.pop("expected")
    with pytest.raises(ConfigError, match=fragment):
        plan_sample_size(expected, **kwargs)  # type: ignore[arg-type]


def test_plan_beyond_max_requests_says_how_many_it_needs_and_what_fits() -> None:
    full = plan_sample_size([75, 25], alpha=2e-4)
    with pytest.raises(ConfigError) as info:
        plan_sample_size([75, 25], alpha=2e-4, max_requests=10_000)
    msg = str(info.value)
    assert "max_requests=10,000" in msg
    assert f"{full.n_ncx2:,}" in msg or f"{full.n_fixed:,}" in msg
    assert "min_deviation" in msg and "fits" in msg
    # The suggested deviation does fit.
    suggested = float(msg.split("about ")[1].split(" fits", maxsplit=1)[0])
    assert plan_sample_size([75, 25], alpha=2e-4, min_deviation=suggested + 0.001).n <= 10_000

    with pytest.raises(ConfigError) as info:
        plan_sample_size([75, 25], alpha=2e-4, max_requests=full.n_fixed, sequential=True)
    assert f"{full.n_sequential:,}" in str(info.value)
    assert "sequential" in str(info.value)


# --------------------------------------------------------------------------- family-wise alpha


def test_family_alpha_controls_the_run_wide_false_alarm_rate() -> None:
    assert family_alpha(n_checks=5) == pytest.approx(2e-4)
    for n_checks in (1, 5, 40):
        per_check = family_alpha(0.001, n_checks=n_checks)
        # Independent checks: the run-wide rate is exactly 1 - (1 - a)^m, below the target.
        assert 1 - (1 - per_check) ** n_checks <= 0.001 * (1 + 1e-12)
        assert per_check * n_checks == pytest.approx(0.001)  # the union bound, any dependence


@pytest.mark.parametrize("n_checks", [0, -1, 2.5, True])
def test_family_alpha_refuses_bad_check_counts(n_checks: object) -> None:
    with pytest.raises(ConfigError, match="n_checks"):
        family_alpha(n_checks=n_checks)  # type: ignore[arg-type]


def test_family_alpha_refuses_bad_run_alpha() -> None:
    with pytest.raises(ConfigError, match="run_alpha"):
        family_alpha(1.5, n_checks=3)


# --------------------------------------------------------------------------- fixed-N test


def test_chi_square_matches_scipy_and_reports_the_evidence() -> None:
    counts = [7_580, 2_420]
    verdict = chi_square_test(counts, [75, 25], 0.01, names=["cheddar", "wensleydale"])
    ref = sps.chisquare(counts, f_exp=[7_500, 2_500])
    assert verdict.statistic == pytest.approx(ref.statistic)
    assert verdict.p_value == pytest.approx(ref.pvalue)
    assert verdict.df == 1
    assert verdict.n == 10_000
    assert verdict.expected_counts == pytest.approx((7_500, 2_500))
    assert verdict.max_abs_deviation == pytest.approx(80)
    assert verdict.observed == pytest.approx((0.758, 0.242))
    for lo, obs, hi in zip(verdict.ci_low, verdict.observed, verdict.ci_high, strict=True):
        assert lo < obs < hi
    assert verdict.ci_level == pytest.approx(0.99)
    assert verdict.verdict is (Verdict.PASS if ref.pvalue >= 0.01 else Verdict.FAIL)
    data = verdict.to_dict()
    assert data["verdict"] in {"pass", "fail"}
    assert data["counts"] == counts
    assert strict_json(data)


def test_chi_square_passes_exact_counts_and_fails_a_wrong_declaration_visibly() -> None:
    plan = plan_sample_size([75, 25], alpha=2e-4)
    n = plan.n_fixed
    exact = [round(0.75 * n), n - round(0.75 * n)]  # what a deterministic WRR delivers
    ok = chi_square_test(exact, [75, 25], plan.alpha, names=["cheddar", "wensleydale"], plan=plan)
    assert ok.passed
    assert ok.p_value > 0.9
    assert ok.planned_n == n
    assert ok.achieved_power == pytest.approx(plan.power_fixed)

    # The same proxy checked against a wrongly declared 78/22.
    wrong = chi_square_test(exact, [78, 22], plan.alpha, names=["cheddar", "wensleydale"])
    assert wrong.verdict is Verdict.FAIL
    assert wrong.p_value < 1e-12
    assert "largest deviation" in wrong.summary
    assert "cheddar 75.00%" in wrong.summary and "vs 78.00%" in wrong.summary
    assert wrong.ci_high[0] < 0.78  # the interval excludes the declared share


def test_chi_square_reports_lost_power_when_fewer_responses_than_planned() -> None:
    plan = plan_sample_size([75, 25], alpha=0.01, power=0.99)
    n = plan.n_fixed // 2
    verdict = chi_square_test([round(0.75 * n), n - round(0.75 * n)], [75, 25], 0.01, plan=plan)
    assert verdict.achieved_power is not None
    assert verdict.achieved_power < 0.9
    assert "only" in verdict.summary and f"{plan.n_fixed:,}" in verdict.summary


def test_chi_square_checks_weight_zero_backends_apart() -> None:
    clean = chi_square_test([7_000, 3_000, 0], [70, 30, 0], 0.01, names=["a", "b", "off"])
    assert clean.passed
    assert clean.df == 1
    assert clean.zero_weight[0].verdict is Verdict.PASS
    assert clean.ci_high[2] == pytest.approx(clean.zero_weight[0].upper_bound)

    leak = chi_square_test([7_000, 2_999, 1], [70, 30, 0], 0.01, names=["a", "b", "off"])
    assert leak.verdict is Verdict.FAIL
    assert leak.p_value > 0.5  # the split itself is fine; the leak alone fails it
    assert "off (weight 0) got 1 hits" in leak.summary


def test_chi_square_refuses_misaligned_or_empty_counts() -> None:
    with pytest.raises(ValueError, match="one count per backend"):
        chi_square_test([1, 2, 3], [50, 50], 0.01)
    with pytest.raises(ValueError, match="no successful"):
        chi_square_test([0, 0], [50, 50], 0.01)
    with pytest.raises(ValueError, match="non-negative"):
        chi_square_test([5, -1], [50, 50], 0.01)
    with pytest.raises(ConfigError, match="alpha"):
        chi_square_test([5, 5], [50, 50], 2.0)


def test_confidence_intervals_are_simultaneous_and_shrink_with_n() -> None:
    small = chi_square_test([75, 25], [75, 25], 0.05)
    large = chi_square_test([7_500, 2_500], [75, 25], 0.05)
    assert large.ci_high[0] - large.ci_low[0] < (small.ci_high[0] - small.ci_low[0]) / 5
    # Simultaneous over two backends: each interval at 1 - 0.05/2, wider than a plain 95 % one.
    z_plain = sps.norm.isf(0.025)
    plain_half = z_plain * math.sqrt(0.75 * 0.25 / 10_000)
    assert (large.ci_high[0] - large.ci_low[0]) / 2 > plain_half


# --------------------------------------------------------------------------- weight 0


def test_zero_weight_bound() -> None:
    ok = zero_weight_bound(0, 300, 0.05, backend="old")
    assert ok.verdict is Verdict.PASS
    assert ok.upper_bound == pytest.approx(1 - 0.05 ** (1 / 300))
    assert ok.upper_bound == pytest.approx(3 / 300, rel=0.01)  # rule of three
    assert "old" in ok.summary
    bad = zero_weight_bound(2, 300, 0.05, backend="old")
    assert bad.verdict is Verdict.FAIL
    assert bad.upper_bound > 2 / 300
    assert bad.upper_bound == pytest.approx(sps.beta.ppf(0.95, 3, 298))
    assert "never sends to weight 0" in bad.summary
    assert strict_json(bad.to_dict())
    with pytest.raises(ValueError):
        zero_weight_bound(5, 3, 0.05)
    with pytest.raises(ConfigError):
        zero_weight_bound(0, 3, 0.0)


# --------------------------------------------------------------------------- sequential test


def test_e_value_kernel_matches_the_formula_and_vectorises() -> None:
    p = np.array([0.5, 0.3, 0.2])
    c = 40.0
    x = np.array([12, 3, 9])
    by_hand = (
        math.lgamma(c)
        - math.lgamma(c + x.sum())
        + sum(math.lgamma(c * pi + xi) - math.lgamma(c * pi) for pi, xi in zip(p, x, strict=True))
        - sum(xi * math.log(pi) for pi, xi in zip(p, x, strict=True))
    )
    assert float(dirichlet_multinomial_log_e(x, p, c)) == pytest.approx(by_hand)
    batch = np.stack([x, 2 * x, x + 1])[None, :, :].repeat(4, axis=0)
    out = dirichlet_multinomial_log_e(batch, p, c)
    assert out.shape == (4, 3)
    assert out[2, 0] == pytest.approx(by_hand)


def test_e_value_has_expectation_one_under_the_null() -> None:
    """The property Ville's inequality needs: E[E_n] = 1 for every n under the declared split."""
    p = np.array([0.7, 0.3])
    for n in (1, 10, 60):
        x = np.arange(n + 1)
        counts = np.stack([x, n - x], axis=-1)
        weights = sps.binom.pmf(x, n, 0.7)
        mean = float(np.sum(weights * np.exp(dirichlet_multinomial_log_e(counts, p, 25.0))))
        assert mean == pytest.approx(1.0, rel=1e-9)


def test_sequential_accepts_only_at_the_cap() -> None:
    test = SequentialSplitTest([75, 25], 0.01, 1_000, names=["cheddar", "wensleydale"])
    state = test.state
    for _ in range(9):
        state = test.update([75, 25])
        assert state.status == "running"
        assert state.e_value < 1.0  # exact counts are evidence *for* the declared split
    early = test.decide()
    assert early.verdict is Verdict.ERROR
    assert "without decisive evidence" in early.summary
    state = test.update([75, 25])
    assert state.status == "accepted" and state.done
    verdict = test.decide()
    assert verdict.verdict is Verdict.PASS
    assert verdict.n == 1_000
    assert not verdict.stopped_early
    assert strict_json(verdict.to_dict())
    with pytest.raises(ValueError, match="already stopped"):
        test.update([1, 0])


def test_sequential_rejects_early_on_decisive_evidence() -> None:
    test = SequentialSplitTest([75, 25], 0.001, 50_000)
    state = test.state
    while not state.done:
        state = test.update([60, 40])  # a 60/40 proxy
    assert state.status == "rejected"
    assert state.e_value >= 1_000
    verdict = test.decide()
    assert verdict.verdict is Verdict.FAIL
    assert verdict.stopped_early
    assert verdict.n < 2_000
    assert "e-value" in verdict.summary and "largest deviation" in verdict.summary
    assert verdict.log10_e_value >= 3
    data = verdict.to_dict()
    assert data["test"] == "sequential e-value"
    assert strict_json(data)


def test_sequential_rejects_a_hit_on_weight_zero_at_once() -> None:
    test = SequentialSplitTest([70, 30, 0], 0.01, 10_000, names=["a", "b", "off"])
    assert test.update([70, 30, 0]).status == "running"
    assert test.update([70, 29, 1]).status == "rejected"
    verdict = test.decide()
    assert verdict.verdict is Verdict.FAIL
    assert "off (weight 0) got 1 hits" in verdict.reason


def test_sequential_evidence_does_not_depend_on_batching() -> None:
    rng = np.random.default_rng(7)
    draws = rng.multinomial(1, [0.5, 0.3, 0.2], size=500)
    one_by_one = SequentialSplitTest([50, 30, 20], 0.01, 10_000, concentration=300.0)
    for row in draws:
        one_by_one.update(row)
    batched = SequentialSplitTest([50, 30, 20], 0.01, 10_000, concentration=300.0)
    batched.update(draws.sum(axis=0))
    assert one_by_one.state.log_e_value == pytest.approx(batched.state.log_e_value)


def test_sequential_from_plan_uses_the_plans_cap_and_prior() -> None:
    plan = plan_sample_size([75, 25], alpha=0.01, sequential=True)
    test = SequentialSplitTest.from_plan(plan, names=["cheddar", "wensleydale"])
    n = 0
    state = test.state
    while not state.done:
        state = test.update([750, 250])
        n += 1_000
    verdict = test.decide()
    assert verdict.max_n == plan.n_sequential
    assert verdict.concentration == pytest.approx(plan.concentration)
    assert verdict.planned_n == plan.n_sequential
    assert verdict.power == plan.power
    assert verdict.passed
    assert n >= plan.n_sequential


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"expected": [75, 25], "alpha": 0.0, "max_n": 10}, "alpha"),
        ({"expected": [75, 25], "alpha": 0.01, "max_n": 0}, "max_n"),
        ({"expected": [0, 0], "alpha": 0.01, "max_n": 10}, "sum to zero"),
        (
            {"expected": [75, 25], "alpha": 0.01, "max_n": 10, "concentration": -1.0},
            "concentration",
        ),
    ],
)
def test_sequential_refuses_bad_parameters(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SequentialSplitTest(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- per replica


def edf_schedule(weights: list[int], n: int) -> np.ndarray:
    """Counts after each request of an earliest-deadline-first weighted round robin.

    The schedule of Traefik's weighted round robin: backend i's j-th turn is due at j / w_i.
    Written here from that description to test the bound, not taken from Traefik's source.
    """
    heap = [(1.0 / w, i) for i, w in enumerate(weights) if w > 0]
    heapq.heapify(heap)
    counts = np.zeros(len(weights), dtype=np.int64)
    out = np.zeros((n, len(weights)), dtype=np.int64)
    for step in range(n):
        deadline, i = heapq.heappop(heap)
        counts[i] += 1
        out[step] = counts
        heapq.heappush(heap, (deadline + 1.0 / weights[i], i))
    return out


@pytest.mark.parametrize("weights", [[3, 1], [75, 25], [1, 1], [8, 1, 1], [5, 3, 2], [70, 30, 0]])
def test_a_deterministic_schedule_stays_within_the_reported_bound(weights: list[int]) -> None:
    trajectory = edf_schedule(weights, 2_000)
    shares = np.array(weights) / sum(weights)
    worst = 0.0
    for counts in trajectory[::7]:
        result = max_count_deviation({"traefik-0": counts.tolist()}, weights)
        row = result.replicas[0]
        assert row.within_schedule_bound, (counts, row)
        worst = max(worst, row.max_abs_deviation)
    n_pos = int(np.count_nonzero(shares))
    if n_pos == 2:
        assert worst <= 1.0  # "within one request of exact" for two backends
    # A chi-square of such counts is far from rejecting.
    final = chi_square_test(trajectory[-1], weights, 0.01)
    assert final.p_value > 0.9


def test_max_count_deviation_flags_a_replica_that_is_not_one_schedule() -> None:
    result = max_count_deviation({"traefik-b": [760, 240], "traefik-a": [750, 250]}, [75, 25])
    assert [r.replica for r in result.replicas] == ["traefik-a", "traefik-b"]
    a, b = result.replicas
    assert a.max_abs_deviation == 0.0 and a.within_schedule_bound
    assert b.max_abs_deviation == pytest.approx(10.0) and not b.within_schedule_bound
    assert result.max_abs_deviation == pytest.approx(10.0)
    assert "earliest-deadline" in result.note
    assert "traefik-b" in result.summary and "beyond the schedule bound" in result.summary
    assert strict_json(result.to_dict())


# --------------------------------------------------------------------------- errors


def test_error_rate_check() -> None:
    ok = error_rate_check(9_990, 10, 0.002)
    assert ok.verdict is Verdict.PASS and ok.ok
    assert ok.error_rate == pytest.approx(0.001)
    bad = error_rate_check(9_900, 100, 0.002)
    assert bad.verdict is Verdict.ERROR and not bad.ok
    assert "not judged" in bad.summary and "100 of 10,000" in bad.summary
    assert strict_json(bad.to_dict())
    nothing = error_rate_check(0, 0, 0.1)
    assert nothing.verdict is Verdict.ERROR
    strict = error_rate_check(10, 0, 0.0)
    assert strict.ok
    with pytest.raises(ConfigError, match="max_error_rate"):
        error_rate_check(10, 0, 1.0)
    with pytest.raises(ValueError):
        error_rate_check(-1, 0, 0.1)
