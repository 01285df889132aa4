"""Statistical verdicts on weighted splits: planned sample sizes, tests that neither flake nor miss.

What it answers: "does the proxy split traffic between these backends in the declared shares?",
from the counts of successful, classified responses per backend. Why a module of its own: the
usual checks (±5 points on 500 requests, retried until one batch passes) pass a 75/25 proxy
against a declared 70/30 almost always, and re-running a test until it passes makes false alarms
*and* misses likely (Gateway API's conformance check, for one: 500 requests within ±5 points,
up to 10 attempts).

The pieces, in the order a check uses them:

1. ``family_alpha``: the per-check alpha, so that a correct proxy fails *any* statistical check in
   at most ``run_alpha`` of runs (default 1 in 1,000).
2. ``plan_sample_size``: how many requests a check needs so that a split off by ``min_deviation``
   in any backend's share is caught with probability ``power`` (noncentral chi-square).
3. ``error_rate_check``: errors are counted, never re-sent; too many make the check an ERROR
   verdict, not a split verdict. Run it before the split test.
4. ``chi_square_test`` (fixed N) or ``SequentialSplitTest`` (anytime-valid: stops as soon as the
   evidence against the declared split is decisive, else passes at its planned cap). A wrong
   split is caught in a fraction of the fixed N; a correct one costs the cap, about 1.3-1.9 times
   the fixed N, since there is no early acceptance. Weight-0 backends are left out of both and
   checked by ``zero_weight_bound`` (no hit allowed).
5. ``max_count_deviation``: evidence per proxy replica. Traefik's balancer is a deterministic
   earliest-deadline schedule, so a correct replica stays within one request of exact for two
   backends (within (k - 1) times a share for k).
6. Two runs side by side (the pre-release gate, ``harness.gate``): ``homogeneity_test`` asks
   whether two runs' counts per backend come from the same split (chi-square homogeneity), and
   ``rank_shift_test`` whether two runs' per-repeat figures come from the same distribution
   (Mann-Whitney, exact over every split of the pooled repeats), so that noise is not a
   difference.

The null model of both tests is an i.i.d. multinomial draw with the declared shares. A
deterministic weighted round robin is far more regular than that (its counts stay within a
request or two of exact), so both tests are conservative against a correct Traefik: p-values
near 1, e-values near 0.

Every result is a frozen dataclass with ``to_dict()`` (strict JSON: no NaN or infinity) and a
one-line ``summary`` for people.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import integrate, optimize, special
from scipy import stats as sps

from harness.errors import ConfigError

__all__ = [
    "ErrorRateVerdict",
    "HomogeneityVerdict",
    "Plan",
    "RankShiftVerdict",
    "ReplicaDeviation",
    "ReplicaDeviations",
    "SequentialSplitTest",
    "SequentialState",
    "SequentialVerdict",
    "SplitVerdict",
    "Verdict",
    "ZeroWeightVerdict",
    "chi_square_test",
    "dirichlet_multinomial_log_e",
    "error_rate_check",
    "family_alpha",
    "homogeneity_test",
    "max_count_deviation",
    "plan_sample_size",
    "rank_shift_test",
    "zero_weight_bound",
]

# Cochran's rule: the chi-square approximation of Pearson's statistic wants every expected count
# to be at least 5; the planner never plans fewer requests than that.
_MIN_EXPECTED_COUNT = 5
# Upper end of the sample-size search, far above any max_requests; only used to say how many
# requests an infeasible plan would need.
_SEARCH_LIMIT = 10**12
# exp(709) is the largest power of e a float holds; larger e-values are reported capped.
_MAX_LOG_FLOAT = 709.0

FloatArray = npt.NDArray[np.float64]
# Declared weights or shares, one per backend: a list or a numpy array.
Shares = Sequence[float] | FloatArray


class Verdict(enum.StrEnum):
    """The outcome of a check. ERROR: the check could not be carried out as planned."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


def _to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON types (enums to their value, tuples to lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            # Strict JSON has no NaN/Infinity; the results schema reads null as "not defined".
            return None
        return value

    out = plain(dataclasses.asdict(obj))
    assert isinstance(out, dict)
    return out


# --------------------------------------------------------------------------- validation


def _check_alpha(alpha: float, what: str = "alpha") -> float:
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise ConfigError(
            f"`{what}` must be a probability strictly between 0 and 1, got {alpha!r}; "
            "a typical per-run value is 0.001 (one false alarm in 1,000 runs of a correct proxy)"
        )
    return float(alpha)


def _check_power(power: float, alpha: float) -> float:
    if not isinstance(power, int | float) or not alpha < float(power) < 1.0:
        raise ConfigError(
            f"`power` must be above alpha ({alpha:.3g}) and below 1, got {power!r}; "
            "the default is 0.99 (a split off by min_deviation is caught in 99 of 100 runs)"
        )
    return float(power)


def _normalise_weights(weights: Shares, what: str = "expected") -> FloatArray:
    """Declared weights (or shares) as shares summing to 1; weights a user wrote are checked."""
    w = np.asarray(weights, dtype=np.float64)
    shown = w.tolist()
    if w.ndim != 1 or w.size < 2:
        raise ConfigError(
            f"`{what}` must list the weights of at least two backends, got {shown!r}; "
            "a single backend has no split to verify (routing probes cover it)"
        )
    if not np.all(np.isfinite(w)):
        raise ConfigError(f"`{what}` has a weight that is not a finite number: {shown!r}")
    if np.any(w < 0):
        raise ConfigError(
            f"`{what}` has a negative weight: {shown!r}; weights must be >= 0 "
            "(Traefik ignores non-positive weights; declare 0 for a backend that gets no traffic)"
        )
    total = float(w.sum())
    if total <= 0:
        raise ConfigError(
            f"`{what}` weights sum to zero: {shown!r}; at least one backend needs a positive weight"
        )
    shares: FloatArray = w / total
    return shares


def _check_min_deviation(min_deviation: float) -> float:
    if not isinstance(min_deviation, int | float) or not 0.0 < float(min_deviation) < 0.5:
        raise ConfigError(
            f"`min_deviation` must be a share strictly between 0 and 0.5, got {min_deviation!r}; "
            "the default 0.02 means 'any backend's share off by 2 points'"
        )
    return float(min_deviation)


def _check_counts(
    counts: Sequence[int] | npt.ArrayLike, k: int, what: str
) -> npt.NDArray[np.int64]:
    arr = np.asarray(counts)
    if arr.shape != (k,):
        raise ValueError(f"`{what}` must have one count per backend ({k}), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) and (
        not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))
    ):
        raise ValueError(f"`{what}` must be whole numbers, got {arr.tolist()!r}")
    out = arr.astype(np.int64)
    if np.any(out < 0):
        raise ValueError(f"`{what}` must be non-negative, got {out.tolist()!r}")
    return out


def _names(names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"backend{i}" for i in range(k))
    if len(names) != k:
        raise ValueError(f"`names` must name each of the {k} backends, got {list(names)!r}")
    return tuple(str(n) for n in names)


# --------------------------------------------------------------------------- family-wise alpha


def family_alpha(run_alpha: float = 0.001, *, n_checks: int) -> float:
    """Per-check alpha so that a correct proxy fails any of ``n_checks`` checks w.p. <= run_alpha.

    Bonferroni (``run_alpha / n_checks``), chosen over Šidák (``1 - (1 - run_alpha)**(1/n)``)
    because it holds for any dependence between the checks (they share one proxy, one machine and
    one night), while Šidák needs independence or positive dependence; at run_alpha = 0.001 the
    two differ by less than 0.05 %, so nothing is lost. Weight-0 bounds cannot raise a false alarm
    on a correct proxy (it never sends there), so counting them in ``n_checks`` is harmless.
    """
    run_alpha = _check_alpha(run_alpha, "run_alpha")
    if isinstance(n_checks, bool) or not isinstance(n_checks, int) or n_checks < 1:
        raise ConfigError(f"`n_checks` must be a whole number >= 1, got {n_checks!r}")
    return run_alpha / n_checks


# --------------------------------------------------------------------------- planning


def _candidate_alternatives(p: FloatArray, d: float) -> list[FloatArray]:
    """Shares with one backend moved by exactly ``d``, the rest absorbing it in proportion.

    For a backend i moved by ±d, spreading the compensation over the others in proportion to
    their shares minimises the noncentrality sum((q - p)^2 / p) (Lagrange), giving
    d^2 / (p_i (1 - p_i)). Moving the mass to a single other backend j gives the larger
    d^2 (1/p_i + 1/p_j). Only alternatives with every share inside (0, 1) are returned.
    """
    out: list[FloatArray] = []
    for i, p_i in enumerate(p):
        rest = 1.0 - p_i
        for sign in (-1.0, 1.0):
            q_i = p_i + sign * d
            if not 0.0 < q_i < 1.0 or rest <= 0.0:
                continue
            q = p * (1.0 - sign * d / rest)
            q[i] = q_i
            if np.all(q > 0.0):
                out.append(q)
    return out


def _hard_candidates(p: FloatArray, d: float) -> list[FloatArray]:
    """The candidate alternatives that can be the hardest to detect, without duplicates.

    A candidate with twice the smallest noncentrality cannot be the hardest: the variance
    correction in ``_pearson_power`` changes the effective noncentrality by the ratio of the
    variances under q and p, 1 + O(d / p_i), far less than 2 for a deviation worth planning for.
    """
    unique: list[FloatArray] = []
    for q in _candidate_alternatives(p, d):
        if not any(np.allclose(q, seen) for seen in unique):  # mirror images in a 2-way split
            unique.append(q)
    w2_min = min(_noncentrality(q, p) for q in unique)
    return [q for q in unique if _noncentrality(q, p) <= 2.0 * w2_min]


def _noncentrality(q: FloatArray, p: FloatArray) -> float:
    """Cohen's w^2 = sum((q - p)^2 / p): the chi-square noncentrality per request."""
    return float(np.sum((q - p) ** 2 / p))


def _kl(q: FloatArray, p: FloatArray) -> float:
    return float(np.sum(special.rel_entr(q, p)))


def _log_dirichlet(q: FloatArray, alpha_vec: FloatArray) -> float:
    return float(
        special.gammaln(alpha_vec.sum())
        - special.gammaln(alpha_vec).sum()
        + np.sum((alpha_vec - 1.0) * np.log(q))
    )


def _pearson_power(n: int, p: FloatArray, q: FloatArray, crit: float) -> float:
    """P(Pearson's statistic > crit) when n responses are drawn with shares q, tested against p.

    The noncentral chi-square treats the counts' covariance under q as if it were the one under
    p; at planning sizes that misjudges the power by up to ~1 point in one direction (e.g. 0.894
    instead of 0.9 for 75/25 -> 73/27). Here the counts are normal with their covariance under
    q, so the statistic is a weighted sum of noncentral chi-squares, evaluated exactly (df = 1)
    or by Imhof's (1961) inversion integral.
    """
    scale = 1.0 / np.sqrt(p)
    mu = math.sqrt(n) * (q - p) * scale
    cov = (np.diag(q) - np.outer(q, q)) * np.outer(scale, scale)
    lam, vecs = np.linalg.eigh(cov)
    keep = lam > 1e-12 * lam.max()
    lam = lam[keep]
    proj = vecs[:, keep].T @ mu  # mean of each principal component
    if lam.size == 1:
        b = float(proj[0]) / math.sqrt(lam[0])
        r = math.sqrt(crit / lam[0])
        return float(sps.norm.sf(r - b) + sps.norm.cdf(-r - b))
    # (weight, squared mean) per component; plain floats: the integrand runs thousands of times.
    terms = [(float(w), float(m * m)) for w, m in zip(lam, proj, strict=True)]
    half_crit = 0.5 * crit

    def integrand(u: float) -> float:
        if u == 0.0:
            return 0.5 * sum(w + m2 for w, m2 in terms) - half_crit
        theta = -half_crit * u
        log_rho = 0.0
        for w, m2 in terms:
            wu = w * u
            one_plus = 1.0 + wu * wu
            theta += 0.5 * (math.atan(wu) + m2 * u / one_plus)
            log_rho += 0.25 * math.log(one_plus) + 0.5 * m2 * wu * u / one_plus
        if log_rho > _MAX_LOG_FLOAT:  # far beyond the plan's n: the integrand is 0 here
            return 0.0
        return math.sin(theta) / (u * math.exp(log_rho))

    with warnings.catch_warnings():
        # Near the null the integrand decays slowly and quad may warn; the value is still far
        # more accurate than a plan needs.
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(integrand, 0.0, math.inf, limit=200, epsabs=1e-7)
    return min(1.0, max(0.0, 0.5 + float(value) / math.pi))


def _smallest_n(
    power_at: Callable[[int], float], target: float, start: int, growth: float = 2.0
) -> int:
    """Smallest n >= start with power_at(n) >= target (power increasing in n)."""
    lo = max(1, start)
    if power_at(lo) >= target:
        return lo
    hi = max(lo + 1, int(lo * growth))
    while power_at(hi) < target:
        lo = hi
        hi = max(lo + 1, int(lo * growth))
        if hi > _SEARCH_LIMIT:
            return _SEARCH_LIMIT
    while hi - lo > 1:  # invariant: power_at(lo) < target <= power_at(hi)
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class Plan:
    """A planned weighted-split check. Sizes count successful, classified responses.

    ``alternative`` is the least favourable split the plan guards against: one positive-weight
    backend's share off by exactly ``min_deviation``, the others absorbing it in proportion (a
    leak onto a weight-0 backend is caught by the zero-hit bound, sized by ``n_zero_weight``).
    ``n_ncx2`` is the textbook noncentral chi-square size; ``n_fixed`` (for ``chi_square_test``)
    is that or more, so that the power also holds with the counts' variance under the
    alternative; ``power_fixed`` is the power it reaches. ``n_sequential`` is the cap for
    ``SequentialSplitTest``: larger, since anytime validity costs samples in the worst case,
    while the sequential test usually stops far earlier.
    """

    expected: tuple[float, ...]
    alpha: float
    power: float
    min_deviation: float
    df: int
    effect_w2: float
    alternative: tuple[float, ...]
    critical_value: float
    n_ncx2: int
    n_fixed: int
    power_fixed: float
    n_sequential: int
    n_zero_weight: int
    concentration: float
    sequential: bool
    max_requests: int

    @property
    def n(self) -> int:
        """Requests the planned mode needs."""
        return self.n_sequential if self.sequential else self.n_fixed

    def power_at(self, n: int) -> float:
        """Power of the fixed-N test at ``n`` against the least favourable alternatives."""
        shares = np.asarray(self.expected)
        positive = shares > 0
        p = shares[positive] / shares[positive].sum()
        candidates = _hard_candidates(p, self.min_deviation) if self.df >= 1 else []
        return _fixed_power(
            n,
            p=p,
            candidates=candidates,
            crit=self.critical_value,
            has_zero=self.n_zero_weight > 0,
            d=self.min_deviation,
        )

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["n"] = self.n
        return out

    @property
    def summary(self) -> str:
        split = "/".join(f"{s * 100:.4g}" for s in self.expected)
        mode = "sequential cap" if self.sequential else "fixed"
        return (
            f"plan {split}: {self.n:,} requests ({mode}) to catch any share off by "
            f"{self.min_deviation * 100:.3g} points with power {self.power:.3g} at "
            f"alpha {self.alpha:.3g} (fixed-N {self.n_fixed:,}, "
            f"sequential cap {self.n_sequential:,})"
        )


def _fixed_power(
    n: int,
    *,
    p: FloatArray,
    candidates: Sequence[FloatArray],
    crit: float,
    has_zero: bool,
    d: float,
) -> float:
    powers = [_pearson_power(n, p, q, crit) for q in candidates]
    if has_zero:
        powers.append(1.0 - (1.0 - d) ** n)
    return min(powers)


def _sequential_power_approx(
    n: int, *, p: FloatArray, candidates: Sequence[FloatArray], c: float, alpha: float
) -> float:
    """Approximate power at ``n`` of the Dirichlet-multinomial e-value test, worst candidate.

    Laplace's approximation of the mixture gives
    log E_n ~ n KL(p_hat || p) - (k-1)/2 log(n / 2 pi) + log Dir(p_hat; c p) + 1/2 sum log p_hat,
    so "E_n >= 1/alpha" is "2 n KL(p_hat || p) >= t(n)". Under an alternative q, 2 n KL(p_hat || p)
    is about noncentral chi-square with noncentrality 2 n KL(q || p). It counts only the final
    look, while the real test also rejects on any earlier crossing, so it errs on the low side
    (simulated power 0.94 where this says 0.90; tests/test_stats_quality.py).
    """
    df = p.size - 1
    worst = 1.0
    for q in candidates:
        t = (
            2.0 * math.log(1.0 / alpha)
            + df * math.log(n / (2.0 * math.pi))
            - 2.0 * _log_dirichlet(q, c * p)
            - float(np.sum(np.log(q)))
        )
        worst = min(worst, float(sps.ncx2.sf(t, df, 2.0 * n * _kl(q, p))))
    return worst


def _best_concentration(p: FloatArray, candidates: Sequence[FloatArray]) -> float:
    """Concentration c of the Dirichlet prior that maximises its density at the alternatives.

    In the approximation above only log Dir(q; c p) depends on c, so this c makes the e-value
    grow fastest at the least favourable alternatives. It comes out near (k-1) / w^2: a prior
    spread about the size of the deviation worth detecting.
    """

    def neg(log_c: float) -> float:
        c = math.exp(log_c)
        return -min(_log_dirichlet(q, c * p) for q in candidates)

    res = optimize.minimize_scalar(neg, bounds=(0.0, math.log(1e9)), method="bounded")
    return float(math.exp(float(res.x)))


@dataclass(frozen=True)
class _Core:
    df: int
    w2: float
    crit: float
    n_ncx2: int
    n_fixed: int
    power_fixed: float
    n_sequential: int
    n_zero: int
    alternative: FloatArray
    concentration: float


def _plan_core(shares: FloatArray, d: float, alpha: float, power: float, *, refine: bool) -> _Core:
    """The plan's numbers; ``refine=False`` skips the finite-sample refinements (fast estimate)."""
    positive = shares > 0
    p = shares[positive] / shares[positive].sum()
    df = int(p.size - 1)
    has_zero = bool(np.any(~positive))
    n_zero = math.ceil(math.log(1.0 - power) / math.log(1.0 - d)) if has_zero else 0
    alt = np.zeros_like(shares)
    if df == 0:
        # All declared traffic goes to one backend: only the zero-hit bound can fail.
        alt[positive] = 1.0 - d
        alt[np.flatnonzero(~positive)[0]] = d
        return _Core(
            0, 0.0, 0.0, n_zero, n_zero, 1.0 - (1.0 - d) ** n_zero, n_zero, n_zero, alt, 1.0
        )
    candidates = _hard_candidates(p, d)
    w2 = min(_noncentrality(q, p) for q in candidates)
    crit = float(sps.chi2.isf(alpha, df))
    n_min = math.ceil(_MIN_EXPECTED_COUNT / float(p.min()))
    n_ncx2 = _smallest_n(lambda n: float(sps.ncx2.sf(crit, df, n * w2)), power, n_min)
    if not refine:
        n = max(n_ncx2, n_zero)
        return _Core(df, w2, crit, n_ncx2, n, power, n, n_zero, alt, 1.0)

    def fixed_power(n: int) -> float:
        return _fixed_power(n, p=p, candidates=candidates, crit=crit, has_zero=has_zero, d=d)

    n_fixed = _smallest_n(fixed_power, power, max(n_ncx2, n_zero), growth=1.05)
    c = _best_concentration(p, candidates)
    n_seq = _smallest_n(
        lambda n: _sequential_power_approx(n, p=p, candidates=candidates, c=c, alpha=alpha),
        power,
        n_fixed,
    )
    alt[positive] = min(candidates, key=lambda q: _pearson_power(n_fixed, p, q, crit))
    return _Core(
        df=df,
        w2=w2,
        crit=crit,
        n_ncx2=n_ncx2,
        n_fixed=n_fixed,
        power_fixed=fixed_power(n_fixed),
        n_sequential=max(n_seq, n_zero),
        n_zero=n_zero,
        alternative=alt,
        concentration=c,
    )


def plan_sample_size(
    expected: Shares,
    *,
    min_deviation: float = 0.02,
    alpha: float,
    power: float = 0.99,
    max_requests: int = 200_000,
    sequential: bool = False,
) -> Plan:
    """Plan how many successful, classified responses a weighted-split check needs.

    ``expected``: declared weights or shares, one per backend (normalised here; zeros allowed).
    ``alpha`` is the per-check alpha (see ``family_alpha``).

    The effect to detect: some positive-weight backend's share off by ``min_deviation`` = d. The
    least favourable such split is found over every backend i and both directions, with the
    other backends absorbing the shift in proportion to their shares; that spread minimises the
    noncentrality per request, w^2 = d^2 / (p_i (1 - p_i)) (Lagrange), below moving the mass to
    any single other backend (d^2 (1/p_i + 1/p_j)), so the minimum over i (the share nearest
    1/2) bounds every split with a share off by >= d. Then ``n_ncx2`` is the smallest n with
    P(ncx2(k-1, n w^2) > chi2.isf(alpha, k-1)) >= power (80/20 -> 78/22: 3,140 at alpha 0.05,
    power 0.8). ``n_fixed`` raises it where needed so that the power holds with the variance of
    the counts under each candidate split (up to ~2 % more in two-way splits), so that every
    expected count is >= 5, and, with weight-0 backends, so that a leak of d onto one of them
    shows a hit with probability >= power.

    Raises ConfigError for unusable parameters, and when the planned mode (``sequential``)
    would need more than ``max_requests``, saying how many it needs and what would fit.
    """
    shares = _normalise_weights(expected)
    alpha = _check_alpha(alpha)
    power = _check_power(power, alpha)
    d = _check_min_deviation(min_deviation)
    if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
        raise ConfigError(f"`max_requests` must be a whole number >= 1, got {max_requests!r}")
    # A cheap lower bound first, so a hopeless request is refused without the slow refinement.
    rough = _plan_core(shares, d, alpha, power, refine=False)
    if rough.n_fixed > max_requests:
        raise ConfigError(
            _too_many_message(
                shares,
                d,
                alpha=alpha,
                power=power,
                max_requests=max_requests,
                sequential=sequential,
                needed=rough.n_fixed,
                lower_bound=True,
            )
        )
    core = _plan_core(shares, d, alpha, power, refine=True)
    needed = core.n_sequential if sequential else core.n_fixed
    if needed > max_requests:
        raise ConfigError(
            _too_many_message(
                shares,
                d,
                alpha=alpha,
                power=power,
                max_requests=max_requests,
                sequential=sequential,
                needed=needed,
                lower_bound=False,
            )
        )
    return Plan(
        expected=tuple(float(s) for s in shares),
        alpha=alpha,
        power=power,
        min_deviation=d,
        df=core.df,
        effect_w2=core.w2,
        alternative=tuple(float(s) for s in core.alternative),
        critical_value=core.crit,
        n_ncx2=core.n_ncx2,
        n_fixed=core.n_fixed,
        power_fixed=core.power_fixed,
        n_sequential=core.n_sequential,
        n_zero_weight=core.n_zero,
        concentration=core.concentration,
        sequential=sequential,
        max_requests=max_requests,
    )


def _too_many_message(
    shares: FloatArray,
    d: float,
    *,
    alpha: float,
    power: float,
    max_requests: int,
    sequential: bool,
    needed: int,
    lower_bound: bool,
) -> str:
    # The smallest min_deviation that fits, by bisection on the fast noncentral chi-square size
    # (n falls roughly as 1/d^2); the sequential cap is about 1.5 times the fixed size.
    ratio = needed / max(1, _plan_core(shares, d, alpha, power, refine=False).n_fixed)

    def fits(dev: float) -> bool:
        return _plan_core(shares, dev, alpha, power, refine=False).n_fixed * ratio <= max_requests

    lo, hi = d, 0.499
    possible = fits(hi)
    if possible:
        for _ in range(30):
            mid = (lo + hi) / 2
            if fits(mid):
                hi = mid
            else:
                lo = mid
    split = "/".join(f"{s * 100:.4g}" for s in shares)
    mode = "sequential (cap)" if sequential else "fixed-N"
    at_least = "at least " if lower_bound else ""
    hint = (
        f"accept a larger min_deviation (about {math.ceil(hi * 1000) / 1000:.3f} fits)"
        if possible
        else "no min_deviation below 0.5 fits"
    )
    return (
        f"the {mode} check of the {split} split needs {at_least}{needed:,} requests to catch a "
        f"share off by min_deviation={d:g} with power={power:g} at alpha={alpha:.3g}, more than "
        f"max_requests={max_requests:,}. Raise max_requests to at least {needed:,}, or {hint}, "
        f"or lower the power, or raise the run alpha"
    )


# --------------------------------------------------------------------------- weight 0


@dataclass(frozen=True)
class ZeroWeightVerdict:
    """A weight-0 backend: any hit fails; ``upper_bound`` is a one-sided bound on its share.

    A correct Traefik never sends to a backend of weight 0 (non-positive weights are dropped
    from its schedule), so there is no false-alarm rate to control: one hit is a defect.
    """

    backend: str
    hits: int
    n: int
    alpha: float
    upper_bound: float
    verdict: Verdict
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def zero_weight_bound(
    hits: int, n: int, alpha: float, *, backend: str = "backend"
) -> ZeroWeightVerdict:
    """Check a weight-0 backend: zero hits required among ``n`` successful, classified responses.

    ``upper_bound`` is the one-sided (1 - alpha) Clopper-Pearson bound on its share: for zero hits
    1 - alpha**(1/n) (about 3/n at alpha 0.05, the "rule of three").
    """
    alpha = _check_alpha(alpha)
    if n < 1 or hits < 0 or hits > n:
        raise ValueError(f"need 0 <= hits <= n and n >= 1, got hits={hits}, n={n}")
    if hits == 0:
        bound = 1.0 - alpha ** (1.0 / n)
    elif hits == n:
        bound = 1.0
    else:
        bound = float(sps.beta.ppf(1.0 - alpha, hits + 1, n - hits))
    verdict = Verdict.PASS if hits == 0 else Verdict.FAIL
    if hits == 0:
        summary = (
            f"pass: weight-0 backend {backend} got 0 of {n:,} requests "
            f"(share <= {bound:.2e} at {1 - alpha:.4g} confidence)"
        )
    else:
        summary = (
            f"fail: weight-0 backend {backend} got {hits:,} of {n:,} requests "
            f"({hits / n:.2%}); a correct Traefik never sends to weight 0"
        )
    return ZeroWeightVerdict(
        backend=backend,
        hits=int(hits),
        n=int(n),
        alpha=alpha,
        upper_bound=float(bound),
        verdict=verdict,
        summary=summary,
    )


# --------------------------------------------------------------------------- fixed-N test


def _wilson(
    counts: npt.NDArray[np.int64], n: int, alpha_each: float
) -> tuple[FloatArray, FloatArray]:
    z = float(sps.norm.isf(alpha_each / 2.0))
    x = counts.astype(np.float64)
    denom = n + z * z
    centre = (x + z * z / 2.0) / denom
    half = z * np.sqrt(x * (n - x) / n + z * z / 4.0) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


@dataclass(frozen=True)
class SplitVerdict:
    """Fixed-N chi-square verdict on a weighted split, with everything a report shows.

    Shares, confidence intervals and ``max_abs_deviation`` are over all ``n`` responses; the
    statistic is over the positive-weight backends only. The intervals are Wilson score
    intervals, simultaneous at 1 - alpha over all backends (Bonferroni); weight-0 backends get
    the one-sided bound in ``zero_weight`` instead.
    """

    backends: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    expected: tuple[float, ...]
    expected_counts: tuple[float, ...]
    observed: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    ci_level: float
    statistic: float
    df: int
    p_value: float
    alpha: float
    max_abs_deviation: float
    zero_weight: tuple[ZeroWeightVerdict, ...]
    planned_n: int | None
    power: float | None
    achieved_power: float | None
    min_deviation: float | None
    verdict: Verdict
    summary: str

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["test"] = "chi-square"
        return out


def _share_lines(
    names: Sequence[str],
    observed: FloatArray,
    low: FloatArray,
    high: FloatArray,
    expected: FloatArray,
) -> str:
    parts = []
    for name, o, lo, hi, e in zip(names, observed, low, high, expected, strict=True):
        parts.append(f"{name} {o:.2%} [{lo:.2%}, {hi:.2%}] vs {e:.2%}")
    return "; ".join(parts)


def _worst_line(names: Sequence[str], observed: FloatArray, expected: FloatArray) -> str:
    i = int(np.argmax(np.abs(observed - expected)))
    delta = (observed[i] - expected[i]) * 100
    return (
        f"largest deviation {names[i]} {observed[i]:.2%} vs {expected[i]:.2%} ({delta:+.2f} points)"
    )


def chi_square_test(
    counts: Sequence[int] | npt.ArrayLike,
    expected_shares: Shares,
    alpha: float,
    *,
    names: Sequence[str] | None = None,
    plan: Plan | None = None,
) -> SplitVerdict:
    """Pearson chi-square goodness of fit of ``counts`` to the declared shares; reject if p < alpha.

    ``counts``: successful, classified responses per backend, aligned with ``expected_shares``
    (run ``error_rate_check`` first; errors are not counts). Backends with share 0 are left out
    of the statistic and must have zero hits (``zero_weight_bound``); either failing fails the
    verdict. A response from a backend that is not in the intent belongs in a weight-0 slot.
    ``plan`` (optional) adds the planned N and the power reached at the N actually used.
    """
    shares = _normalise_weights(expected_shares, "expected_shares")
    alpha = _check_alpha(alpha)
    k = shares.size
    x = _check_counts(counts, k, "counts")
    labels = _names(names, k)
    n = int(x.sum())
    if n < 1:
        raise ValueError(
            "no successful, classified responses to test; error_rate_check reports this as an error"
        )
    positive = shares > 0
    p = shares[positive] / shares[positive].sum()
    xp = x[positive]
    n_pos = int(xp.sum())
    df = int(p.size - 1)
    if df >= 1 and n_pos > 0:
        e_pos = n_pos * p
        statistic = float(np.sum((xp - e_pos) ** 2 / e_pos))
        p_value = float(sps.chi2.sf(statistic, df))
    else:
        statistic, p_value = 0.0, 1.0
    expected_counts = np.zeros(k)
    expected_counts[positive] = n_pos * p

    alpha_each = alpha / k
    zero = tuple(
        zero_weight_bound(int(x[i]), n, alpha_each, backend=labels[i])
        for i in np.flatnonzero(~positive)
    )
    observed = x / n
    low, high = _wilson(x, n, alpha_each)
    for z, i in zip(zero, np.flatnonzero(~positive), strict=True):
        low[i], high[i] = 0.0, z.upper_bound
    max_dev = float(np.max(np.abs(x - n * shares)))

    split_ok = p_value >= alpha
    zero_ok = all(z.verdict is Verdict.PASS for z in zero)
    verdict = Verdict.PASS if split_ok and zero_ok else Verdict.FAIL
    achieved = None
    if plan is not None:
        achieved = plan.power_fixed if n == plan.n_fixed else plan.power_at(n)

    split_txt = "/".join(f"{s * 100:.4g}" for s in shares)
    head = (
        f"{verdict.value}: {split_txt} split, n={n:,}, chi2={statistic:.3g} (df={df}), "
        f"p={p_value:.3g} {'>=' if split_ok else '<'} alpha={alpha:.3g}"
    )
    if not split_ok:
        head += "; " + _worst_line(labels, observed, shares)
    for z in zero:
        if z.verdict is not Verdict.PASS:
            head += f"; {z.backend} (weight 0) got {z.hits:,} hits"
    if plan is not None and achieved is not None and n < plan.n_fixed:
        head += f"; only {n:,} of the planned {plan.n_fixed:,} requests (power {achieved:.3g})"
    summary = head + "; " + _share_lines(labels, observed, low, high, shares)

    return SplitVerdict(
        backends=labels,
        counts=tuple(int(v) for v in x),
        n=n,
        expected=tuple(float(s) for s in shares),
        expected_counts=tuple(float(v) for v in expected_counts),
        observed=tuple(float(v) for v in observed),
        ci_low=tuple(float(v) for v in low),
        ci_high=tuple(float(v) for v in high),
        ci_level=1.0 - alpha,
        statistic=statistic,
        df=df,
        p_value=p_value,
        alpha=alpha,
        max_abs_deviation=max_dev,
        zero_weight=zero,
        planned_n=plan.n_fixed if plan is not None else None,
        power=plan.power if plan is not None else None,
        achieved_power=achieved,
        min_deviation=plan.min_deviation if plan is not None else None,
        verdict=verdict,
        summary=summary,
    )


# --------------------------------------------------------------------------- sequential test


def dirichlet_multinomial_log_e(
    counts: npt.ArrayLike, shares: npt.ArrayLike, concentration: float
) -> FloatArray:
    """Log e-value of cumulative ``counts`` (shape (..., k)) against the point null ``shares``.

    The Bayes factor of a Dirichlet(concentration * shares) mixture of multinomials against the
    multinomial with ``shares`` (all > 0):
    log E = lnG(c) - lnG(c + n) + sum(lnG(c p_i + x_i) - lnG(c p_i)) - sum(x_i log p_i).
    Under the null it is a nonnegative martingale in the request order with E_0 = 1, so by Ville's
    inequality P(E_n >= 1/alpha for some n) <= alpha. It depends on the counts only, so it can be
    evaluated at any subset of times (every batch), vectorised over leading axes for simulation.
    """
    x = np.asarray(counts, dtype=np.float64)
    p = np.asarray(shares, dtype=np.float64)
    a = concentration * p
    n = x.sum(axis=-1)
    out: FloatArray = (
        special.gammaln(concentration)
        - special.gammaln(concentration + n)
        + np.sum(special.gammaln(a + x) - special.gammaln(a), axis=-1)
        - np.sum(x * np.log(p), axis=-1)
    )
    return out


Status = Literal["running", "rejected", "accepted"]


@dataclass(frozen=True)
class SequentialState:
    """Where a sequential test stands after an update."""

    n: int
    counts: tuple[int, ...]
    log_e_value: float
    e_value: float
    status: Status

    @property
    def done(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True)
class SequentialVerdict:
    """Anytime-valid verdict on a weighted split; the evidence is the e-value.

    ``e_value`` (capped at about 1e308; ``log10_e_value`` is exact) is the Dirichlet-multinomial
    Bayes factor against the declared split; the test rejects when it reaches ``threshold`` =
    1/alpha. The intervals are the same simultaneous Wilson intervals as the fixed-N test, nominal
    only: they do not account for stopping early.
    """

    backends: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    max_n: int
    expected: tuple[float, ...]
    observed: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    ci_level: float
    e_value: float
    log10_e_value: float
    threshold: float
    alpha: float
    concentration: float
    max_abs_deviation: float
    stopped_early: bool
    zero_weight: tuple[ZeroWeightVerdict, ...]
    planned_n: int | None
    power: float | None
    min_deviation: float | None
    verdict: Verdict
    reason: str
    summary: str

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        out = _to_dict(self)
        out["test"] = "sequential e-value"
        return out


class SequentialSplitTest:
    """Anytime-valid test of a weighted split: feed counts in batches, stop when ``done``.

    Rejects (FAIL) as soon as the Dirichlet-multinomial e-value reaches 1/alpha, or at the first
    hit on a weight-0 backend. Accepts (PASS) only when ``max_n`` responses have been seen without
    rejection: there is no early acceptance, because a small e-value is not evidence *for* the
    declared split, and the planned power holds only at the cap. Checking after every batch (or
    every request) is allowed: the e-value is a test martingale, so the false-alarm probability
    over all looks together is at most alpha (Ville's inequality). A batch that overshoots
    ``max_n`` is used whole (still valid; the evidence is just a little larger).

    ``concentration``: the prior's c; by default the one that makes the e-value grow fastest at
    the least favourable split off by ``min_deviation`` (see ``plan_sample_size``).
    """

    def __init__(
        self,
        expected: Shares,
        alpha: float,
        max_n: int,
        *,
        concentration: float | None = None,
        min_deviation: float = 0.02,
        names: Sequence[str] | None = None,
        plan: Plan | None = None,
    ) -> None:
        self._shares = _normalise_weights(expected)
        self._alpha = _check_alpha(alpha)
        if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
            raise ConfigError(f"`max_n` must be a whole number >= 1, got {max_n!r}")
        self._max_n = max_n
        d = _check_min_deviation(min_deviation)
        self._positive = self._shares > 0
        self._p = self._shares[self._positive] / self._shares[self._positive].sum()
        if concentration is None:
            if self._p.size >= 2:
                concentration = _best_concentration(self._p, _hard_candidates(self._p, d))
            else:
                concentration = 1.0
        if not isinstance(concentration, int | float) or not 0 < concentration < math.inf:
            raise ConfigError(f"`concentration` must be a positive number, got {concentration!r}")
        self._c = float(concentration)
        self._names = _names(names, self._shares.size)
        self._plan = plan
        self._counts = np.zeros(self._shares.size, dtype=np.int64)
        self._log_e = 0.0
        self._status: Status = "running"

    @classmethod
    def from_plan(cls, plan: Plan, *, names: Sequence[str] | None = None) -> SequentialSplitTest:
        """The sequential test a plan describes: its shares, alpha, cap and concentration."""
        return cls(
            plan.expected,
            plan.alpha,
            plan.n_sequential,
            concentration=plan.concentration,
            min_deviation=plan.min_deviation,
            names=names,
            plan=plan,
        )

    @property
    def state(self) -> SequentialState:
        return SequentialState(
            n=int(self._counts.sum()),
            counts=tuple(int(v) for v in self._counts),
            log_e_value=self._log_e,
            e_value=math.exp(min(self._log_e, _MAX_LOG_FLOAT)),
            status=self._status,
        )

    def update(self, counts_increment: Sequence[int] | npt.ArrayLike) -> SequentialState:
        """Add a batch of successful, classified responses per backend; return the new state."""
        if self._status != "running":
            raise ValueError(f"the test has already stopped ({self._status}); stop sending")
        inc = _check_counts(counts_increment, self._shares.size, "counts_increment")
        self._counts += inc
        if self._p.size >= 2:
            self._log_e = float(
                dirichlet_multinomial_log_e(self._counts[self._positive], self._p, self._c)
            )
        n = int(self._counts.sum())
        if np.any(self._counts[~self._positive] > 0) or self._log_e >= math.log(1.0 / self._alpha):
            self._status = "rejected"
        elif n >= self._max_n:
            self._status = "accepted"
        return self.state

    def decide(self) -> SequentialVerdict:
        """The verdict; ERROR when the test was stopped before the cap without a rejection."""
        x = self._counts
        n = int(x.sum())
        k = self._shares.size
        alpha_each = self._alpha / k
        threshold = 1.0 / self._alpha
        zero: tuple[ZeroWeightVerdict, ...] = ()
        if n >= 1:
            zero = tuple(
                zero_weight_bound(int(x[i]), n, alpha_each, backend=self._names[i])
                for i in np.flatnonzero(~self._positive)
            )
            observed = x / n
            low, high = _wilson(x, n, alpha_each)
            for z, i in zip(zero, np.flatnonzero(~self._positive), strict=True):
                low[i], high[i] = 0.0, z.upper_bound
        else:
            observed = np.zeros(k)
            low, high = np.zeros(k), np.ones(k)
        log10_e = self._log_e / math.log(10.0)
        split_txt = "/".join(f"{s * 100:.4g}" for s in self._shares)

        if self._status == "rejected":
            verdict = Verdict.FAIL
            leaks = [z for z in zero if z.verdict is not Verdict.PASS]
            if leaks:
                reason = "; ".join(f"{z.backend} (weight 0) got {z.hits:,} hits" for z in leaks)
            else:
                reason = (
                    f"e-value 10^{log10_e:.1f} >= 1/alpha = {threshold:.3g} after {n:,} requests; "
                    + _worst_line(self._names, observed, self._shares)
                )
        elif self._status == "accepted":
            verdict = Verdict.PASS
            reason = (
                f"no decisive evidence against the split in {n:,} requests "
                f"(cap {self._max_n:,}; e-value {math.exp(min(self._log_e, _MAX_LOG_FLOAT)):.3g} "
                f"< {threshold:.3g})"
            )
        else:
            verdict = Verdict.ERROR
            reason = (
                f"stopped after {n:,} of {self._max_n:,} requests without decisive evidence; "
                "the planned power holds only at the cap"
            )
        summary = f"{verdict.value}: {split_txt} split (sequential): {reason}"
        if n >= 1:
            summary += "; " + _share_lines(self._names, observed, low, high, self._shares)
        plan = self._plan
        return SequentialVerdict(
            backends=self._names,
            counts=tuple(int(v) for v in x),
            n=n,
            max_n=self._max_n,
            expected=tuple(float(s) for s in self._shares),
            observed=tuple(float(v) for v in observed),
            ci_low=tuple(float(v) for v in low),
            ci_high=tuple(float(v) for v in high),
            ci_level=1.0 - self._alpha,
            e_value=math.exp(min(self._log_e, _MAX_LOG_FLOAT)),
            log10_e_value=log10_e,
            threshold=threshold,
            alpha=self._alpha,
            concentration=self._c,
            max_abs_deviation=float(np.max(np.abs(x - n * self._shares))),
            stopped_early=self._status == "rejected" and n < self._max_n,
            zero_weight=zero,
            planned_n=plan.n_sequential if plan is not None else None,
            power=plan.power if plan is not None else None,
            min_deviation=plan.min_deviation if plan is not None else None,
            verdict=verdict,
            reason=reason,
            summary=summary,
        )


# --------------------------------------------------------------------------- per replica

_WRR_NOTE = (
    "Traefik's weighted round robin is a deterministic earliest-deadline schedule: one replica, "
    "from a fresh schedule (start or reload), stays within (-(1 - s_i), (k - 1) s_i] requests of "
    "n s_i for each backend i, i.e. within one request for two backends; every reload or "
    "replica restart starts a new schedule, so the bound adds up across them. A chi-square test "
    "of such counts gives p close to 1, as it should for a reject-if-p<alpha test."
)


@dataclass(frozen=True)
class ReplicaDeviation:
    """Counts seen through one proxy replica and their largest distance from exact."""

    replica: str
    n: int
    counts: tuple[int, ...]
    expected_counts: tuple[float, ...]
    max_abs_deviation: float
    schedule_bound: float
    within_schedule_bound: bool


@dataclass(frozen=True)
class ReplicaDeviations:
    """Per-replica evidence of how close each replica's schedule is to the declared shares."""

    expected: tuple[float, ...]
    replicas: tuple[ReplicaDeviation, ...]
    max_abs_deviation: float
    note: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def max_count_deviation(
    counts_by_replica: Mapping[str, Sequence[int]], shares: Shares
) -> ReplicaDeviations:
    """max |count - n share| per proxy replica (X-Forwarded-Server), as evidence, not a verdict.

    ``schedule_bound`` is the largest deviation one fresh earliest-deadline schedule can show:
    max over positive-weight backends of max(1 - s_i, (k - 1) s_i) (< 1 for two backends;
    a weight-0 backend must stay at 0). Exceeding it means the replica is not one undisturbed
    weighted round robin: a reload during the run, retries, or a different balancer.
    """
    s = _normalise_weights(shares, "shares")
    pos = s[s > 0]
    k_pos = pos.size
    bound = float(np.max(np.maximum(1.0 - pos, (k_pos - 1) * pos))) if k_pos >= 2 else 0.0
    rows = []
    for replica, counts in sorted(counts_by_replica.items()):
        x = _check_counts(counts, s.size, f"counts of replica {replica!r}")
        n = int(x.sum())
        exp_counts = n * s
        dev = float(np.max(np.abs(x - exp_counts))) if n else 0.0
        rows.append(
            ReplicaDeviation(
                replica=str(replica),
                n=n,
                counts=tuple(int(v) for v in x),
                expected_counts=tuple(float(v) for v in exp_counts),
                max_abs_deviation=dev,
                schedule_bound=bound,
                within_schedule_bound=dev <= bound + 1e-9,
            )
        )
    overall = max((r.max_abs_deviation for r in rows), default=0.0)
    parts = [
        f"{r.replica}: {r.max_abs_deviation:.2f} of {r.n:,}"
        + ("" if r.within_schedule_bound else f" (beyond the schedule bound {bound:.2f})")
        for r in rows
    ]
    summary = "max |count - n share| per replica: " + ("; ".join(parts) if parts else "none")
    return ReplicaDeviations(
        expected=tuple(float(v) for v in s),
        replicas=tuple(rows),
        max_abs_deviation=overall,
        note=_WRR_NOTE,
        summary=summary,
    )


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ErrorRateVerdict:
    """Errors among the requests of a check. Above the threshold the check is an ERROR verdict."""

    successes: int
    errors: int
    error_rate: float
    max_error_rate: float
    verdict: Verdict
    summary: str

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def error_rate_check(successes: int, errors: int, max_error_rate: float) -> ErrorRateVerdict:
    """Compare the observed error rate with ``max_error_rate``; run before the split test.

    Errors (timeouts, refused, 5xx, unclassifiable responses) are counted, never re-sent. When
    their share is above the threshold the split cannot be judged fairly (errors may hit one
    backend more than another), so the verdict is ERROR, not a split FAIL. No responses at all is
    an ERROR too.
    """
    if not isinstance(max_error_rate, int | float) or not 0.0 <= float(max_error_rate) < 1.0:
        raise ConfigError(
            f"`max_error_rate` must be in [0, 1), got {max_error_rate!r}; e.g. 0.001 allows one "
            "failed request in 1,000"
        )
    if successes < 0 or errors < 0:
        raise ValueError(f"counts must be non-negative, got successes={successes}, errors={errors}")
    total = successes + errors
    rate = errors / total if total else 1.0
    if total == 0:
        verdict = Verdict.ERROR
        summary = "error: no requests completed"
    elif rate > max_error_rate:
        verdict = Verdict.ERROR
        summary = (
            f"error: {errors:,} of {total:,} requests failed ({rate:.3%}), above the allowed "
            f"{max_error_rate:.3%}; the split is not judged"
        )
    else:
        verdict = Verdict.PASS
        summary = (
            f"pass: {errors:,} of {total:,} requests failed ({rate:.3%}), within the allowed "
            f"{max_error_rate:.3%}"
        )
    return ErrorRateVerdict(
        successes=int(successes),
        errors=int(errors),
        error_rate=float(rate),
        max_error_rate=float(max_error_rate),
        verdict=verdict,
        summary=summary,
    )


# --------------------------------------------------------------------------- two runs compared


@dataclass(frozen=True)
class HomogeneityVerdict:
    """Whether two runs' counts per backend come from one split (``homogeneity_test``)."""

    backends: tuple[str, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    statistic: float
    df: int
    p_value: float
    alpha: float
    #: True: the splits differ beyond what sampling explains (p < alpha).
    differs: bool
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


def homogeneity_test(
    before: Mapping[str, int], after: Mapping[str, int], alpha: float
) -> HomogeneityVerdict:
    """Pearson's chi-square test of homogeneity on the 2 x k table of two runs' counts per
    backend: do both come from the same split? Rejects when p < ``alpha``.

    A backend counted in neither run is left out. A backend counted in one run only is a
    column like any other (a share of 0 against a share > 0 is what the test is for). With one
    backend in all there is nothing to compare (p = 1). The null is i.i.d. multinomial draws,
    which a deterministic round robin beats (its counts are more regular), so against two correct
    Traefik runs the test is conservative.
    """
    alpha = _check_alpha(alpha)
    names = tuple(sorted({*before, *after}))
    table = np.array(
        [[int(before.get(n, 0)) for n in names], [int(after.get(n, 0)) for n in names]],
        dtype=float,
    )
    if (table < 0).any():
        raise ValueError(f"counts must be non-negative, got {before!r} and {after!r}")
    keep = table.sum(axis=0) > 0
    table, kept = table[:, keep], tuple(n for n, k in zip(names, keep, strict=True) if k)
    rows = table.sum(axis=1)
    if (rows == 0).any():
        raise ValueError("both runs need at least one counted answer to be compared")
    df = int(table.shape[1] - 1)
    if df < 1:
        statistic, p_value = 0.0, 1.0
    else:
        expected = np.outer(rows, table.sum(axis=0)) / table.sum()
        statistic = float(np.sum((table - expected) ** 2 / expected))
        p_value = float(sps.chi2.sf(statistic, df))
    differs = p_value < alpha

    def shares(row: FloatArray) -> str:
        return ", ".join(f"{n} {c / row.sum():.2%}" for n, c in zip(kept, row, strict=True))

    summary = (
        f"{'differs' if differs else 'same split'}: chi2={statistic:.3g} (df={df}), "
        f"p={p_value:.3g} {'<' if differs else '>='} alpha={alpha:.3g}; before {shares(table[0])}"
        f" (n={int(rows[0]):,}); after {shares(table[1])} (n={int(rows[1]):,})"
    )
    return HomogeneityVerdict(
        backends=kept,
        before=tuple(int(v) for v in table[0]),
        after=tuple(int(v) for v in table[1]),
        statistic=statistic,
        df=df,
        p_value=p_value,
        alpha=alpha,
        differs=differs,
        summary=summary,
    )


#: Above this many splits of the pooled repeats the rank test uses the normal approximation
#: (with the tie correction) instead of enumerating them (C(20, 10) = 184,756: 10 repeats each).
_EXACT_SPLITS = 200_000


@dataclass(frozen=True)
class RankShiftVerdict:
    """Whether two runs' per-repeat figures come from one distribution (``rank_shift_test``)."""

    before: tuple[float, ...]
    after: tuple[float, ...]
    u: float
    p_value: float
    #: The smallest p-value these sample sizes can give: below alpha, no difference can show.
    p_floor: float
    alpha: float
    exact: bool
    differs: bool
    summary: str

    @property
    def decidable(self) -> bool:
        """Whether enough repeats were made for a difference to be able to show at alpha."""
        return self.p_floor < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {**_to_dict(self), "decidable": self.decidable}


def _u_statistic(ranks: FloatArray, n_before: int) -> float:
    return float(ranks[:n_before].sum() - n_before * (n_before + 1) / 2)


def rank_shift_test(
    before: Sequence[float] | FloatArray, after: Sequence[float] | FloatArray, alpha: float
) -> RankShiftVerdict:
    """Two-sided Mann-Whitney test of two runs' per-repeat figures; rejects when p <= ``alpha``.

    Why this test: the figures of a change (gap, failed requests) are few (5 repeats), skewed
    and often tied (most repeats 0) or bimodal (delete-create: 0 or about 2 s, depending on where
    the change falls in Traefik's throttle window), so a test on means (t-test) is wrong and a
    comparison of medians alone is blind to spread. The rank test assumes nothing about the
    distribution, and its p-value is computed exactly, by enumerating every split of the pooled
    repeats (a permutation test of U, correct with ties), up to ``_EXACT_SPLITS`` splits. With
    identical figures in both runs p = 1. ``p_floor`` is the smallest p these sizes allow
    (2 / C(10, 5) = 0.0079 for 5 repeats each): a difference "beyond the repeats' spread" means
    every repeat of one run lies beyond every repeat of the other at that size.
    """
    alpha = _check_alpha(alpha)
    a = np.asarray(before, dtype=float)
    b = np.asarray(after, dtype=float)
    if a.size < 1 or b.size < 1 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"need finite figures on both sides, got {before!r} and {after!r}")
    pooled = np.concatenate([a, b])
    ranks = sps.rankdata(pooled)
    n_a, n = a.size, pooled.size
    u = _u_statistic(ranks, n_a)
    centre = n_a * b.size / 2
    splits = math.comb(n, n_a)
    p_floor = min(1.0, 2.0 / splits)
    exact = splits <= _EXACT_SPLITS
    if np.all(pooled == pooled[0]):
        p_value = 1.0
    elif exact:
        splits_idx = np.array(list(itertools.combinations(range(n), n_a)), dtype=np.intp)
        us = ranks[splits_idx].sum(axis=1) - n_a * (n_a + 1) / 2
        # Two-sided: splits at least as far from the centre as the one observed (a small
        # tolerance, since tied ranks are halves).
        p_value = float(np.mean(np.abs(us - centre) >= abs(u - centre) - 1e-9))
    else:
        p_value = float(sps.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")[1])
    p_value = min(1.0, p_value)
    differs = p_value <= alpha

    def median(x: FloatArray) -> str:
        return f"{float(np.median(x)):.4g}"

    summary = (
        f"{'differs' if differs else 'within the spread'}: Mann-Whitney U={u:g}, "
        f"p={p_value:.3g} {'<=' if differs else '>'} alpha={alpha:.3g}; median "
        f"{median(a)} (n={a.size}) -> {median(b)} (n={b.size})"
    )
    if p_floor > alpha:
        summary += f"; {a.size} and {b.size} repeats cannot show a difference at this alpha"
    return RankShiftVerdict(
        before=tuple(float(v) for v in a),
        after=tuple(float(v) for v in b),
        u=u,
        p_value=p_value,
        p_floor=p_floor,
        alpha=alpha,
        exact=exact,
        differs=differs,
        summary=summary,
    )
