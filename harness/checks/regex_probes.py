"""Request values generated from a Go regular expression: a few that match it and a few near
misses that do not, for the probes of regex paths (``PathRegexp``) and regex request conditions
(``HeaderRegexp``, ``QueryRegexp``).

Values come from Hypothesis's ``from_regex`` on the pattern's Python translation
(:mod:`harness.traefik.goregexp`, which refuses what Python would read differently), drawn
derandomized, with no example database and without the constants Hypothesis collects from local
modules, so the same pattern gives the same values, and so the same probe ids, on every run
(with the same Hypothesis version). Printable ASCII is tried first (readable ids), any non-control
character only when the pattern needs one. Near misses are derived from the matching values: the
literal part every match shares followed by a character no match had there, the value in another
case, one character short, one character more. Every value is turned into a request
value by the caller's ``usable`` (None: it cannot be sent as such) and judged by the caller's
``matches``, which is the oracle's own matcher on what Traefik will see: a value that would not
match (or would) as intended never becomes a probe.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import InvalidArgument, Unsatisfiable
from hypothesis.internal.conjecture.providers import AVAILABLE_PROVIDERS, HypothesisProvider
from hypothesis.internal.constants_ast import Constants

from harness.traefik.goregexp import cached_go_regexp

__all__ = ["DRAWS", "PER_KIND", "PatternValues", "pattern_values"]

#: Values of each kind (matching, not matching) a pattern contributes.
PER_KIND = 3
#: Draws per pattern and alphabet: the bound on the effort to find matching values.
DRAWS = 40

_ASCII = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_ANY = st.characters(exclude_categories=("Cs", "Cc"))


class _ProviderWithoutLocalConstants(HypothesisProvider):
    """Hypothesis's own provider without the constants it collects from the modules loaded
    from the working folder: which modules a run has loaded must not change a probe."""

    @cached_property
    def _local_constants(self) -> Constants:
        return Constants()


_BACKEND = "ingress-harness"
AVAILABLE_PROVIDERS[_BACKEND] = f"{__name__}.{_ProviderWithoutLocalConstants.__name__}"
# Hypothesis caches its Unicode tables under ./.hypothesis by default: keep the user's folder
# clean unless they chose a place themselves.
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    set_hypothesis_home_dir(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "ingress-harness"
        / "hypothesis"
    )
_SETTINGS = settings(
    backend=_BACKEND,
    database=None,
    derandomize=True,
    max_examples=DRAWS,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    verbosity=Verbosity.quiet,
)


@dataclass(frozen=True)
class PatternValues:
    """Request values for one pattern: ``matching`` ones, ``missing`` near misses."""

    pattern: str
    matching: tuple[str, ...]
    missing: tuple[str, ...]


def _draw(strategy: st.SearchStrategy[str]) -> list[str]:
    out: list[str] = []

    @_SETTINGS
    @given(strategy)
    def collect(value: str) -> None:
        out.append(value)

    collect()
    return out


@lru_cache(maxsize=512)
def _generated(pattern: str) -> tuple[str, ...]:
    """Strings Python's translation of ``pattern`` finds a match in: whole matches first, then
    matches inside other text; deterministic."""
    compiled = cached_go_regexp(pattern).compiled
    out: list[str] = []
    for fullmatch in (True, False):
        for alphabet in (_ASCII, _ANY):
            strategy = st.from_regex(compiled, fullmatch=fullmatch, alphabet=alphabet)
            try:
                drawn = _draw(strategy)
            except InvalidArgument:  # a literal outside the alphabet: try the next one
                continue
            except Unsatisfiable:
                drawn = []
            out.extend(drawn)
            break
    return tuple(dict.fromkeys(out))


def _near_misses(matching: list[str]) -> list[str]:
    """Candidates just beside the matching texts: the part every match shares followed by a
    character no match has there, then each text in another case, one character short, one
    more."""
    shared = matching[0] if matching else ""
    for text in matching:
        while not text.startswith(shared):
            shared = shared[:-1]
    seen = {t[len(shared)] for t in matching if len(t) > len(shared)}
    out = [shared + c for c in "~-X0" if c not in seen]
    for text in matching:
        out += [text.swapcase(), text[:-1], text + "~", text + "/x"]
    return out


def pattern_values(
    pattern: str,
    usable: Callable[[str], str | None],
    matches: Callable[[str], bool],
    count: int = PER_KIND,
) -> PatternValues:
    """Up to ``count`` request values that ``matches`` accepts and ``count`` near misses it
    refuses. ``usable`` turns a generated text into the value to send (None: it cannot be sent);
    ``matches`` judges that value as the oracle reads the request. An empty ``matching`` means
    no value was found within :data:`DRAWS` draws per alphabet."""
    matching: list[str] = []
    texts: list[str] = []
    for text in _generated(pattern):
        value = usable(text)
        if value is not None and value not in matching and matches(value):
            matching.append(value)
            texts.append(text)
            if len(matching) == count:
                break
    missing: list[str] = []
    for text in _near_misses(texts):
        value = usable(text)
        if value is not None and value not in missing and not matches(value):
            missing.append(value)
            if len(missing) == count:
                break
    return PatternValues(pattern, tuple(matching), tuple(missing))
