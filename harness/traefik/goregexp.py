"""Go's ``regexp`` (RE2 syntax) on Python's ``re``: a translation that keeps Go's meaning, or a
refusal that names the construct.

Traefik compiles every middleware regex with Go's ``regexp.Compile`` and rewrites with
``Regexp.ReplaceAllString``. Python's ``re`` reads much of the same syntax differently, so a
pattern is translated construct by construct and anything whose meaning could differ is refused
(:class:`GoRegexpError`), never passed through:

- refused because RE2 has no such thing (Traefik would refuse the Middleware): lookarounds
  ``(?=``, ``(?!``, ``(?<=``, ``(?<!``, backreferences ``\\1`` / ``(?P=n)``, atomic groups,
  conditionals, comments ``(?#``, possessive or nested repetition (``a*+``, ``a**``), ``\\Z``;
- refused because the translation is not implemented: Unicode classes ``\\p{..}``, POSIX classes
  ``[[:alpha:]]``, the ungreedy flag ``U``, negated Perl classes inside a class (``[\\D]``),
  octal escapes, repeated group names, group names Python cannot hold, a capture inside a
  repeated group (``(a)*``: which iteration it reports is not proven to agree);
- translated: ``\\d \\w \\s \\b`` to Go's ASCII meaning (Python's are Unicode; Go's ``\\s`` has no
  ``\\v``), ``$`` to end of text (Python's ``$`` also matches before a final newline), ``^``,
  ``.`` and the flags ``i m s`` scoped exactly as Go scopes them (to the end of the enclosing
  group, across ``|``), ``(?<name>`` to ``(?P<name>``, ``\\Q..\\E`` and ``\\x{..}`` to literals,
  a ``{`` that is not a Go repetition to a literal (Python reads ``{,3}`` as a repetition).

Replacement templates follow Go's ``Regexp.Expand``, implemented here rather than translated to
Python's ``\\1``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; ``$1x`` names the group
``1x`` (empty when there is none), a malformed ``$`` stays literal. ``ReplaceAllString`` skips an
empty match right after a previous match, as Go does (Python's ``re.sub`` does not since 3.7).
Go matches leftmost-first, like Python's backtracking engine, so match positions agree.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "GoRegexp",
    "GoRegexpError",
    "cached_go_regexp",
    "compile_go_regexp",
    "translate_go_regexp",
]

# Go's Perl classes are ASCII-only.
_PERL_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_WORD = "[0-9A-Za-z_]"
_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
_NOT_BOUNDARY = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"
_SIMPLE_ESCAPES = {"a": "\\a", "f": "\\f", "t": "\\t", "n": "\\n", "r": "\\r", "v": "\\v"}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])")
_GO_MAX_REPEAT = 1000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class GoRegexpError(ValueError):
    """A Go pattern that Go refuses, or whose meaning the translation cannot guarantee."""


@dataclass(frozen=True)
class GoRegexp:
    """A Go pattern, its Python translation and its group names (index 0: the whole match)."""

    source: str
    python: str
    group_names: tuple[str | None, ...]
    compiled: re.Pattern[str] = field(compare=False, repr=False)

    def search(self, text: str) -> re.Match[str] | None:
        """``FindStringSubmatch``: the leftmost match, or None."""
        return self.compiled.search(text)

    def replace_all(self, text: str, template: str) -> str:
        """``ReplaceAllString(text, template)`` with Go's ``Expand`` and empty-match rules."""
        out: list[str] = []
        last_end = 0
        pos = 0
        # Each round consumes at least one character, so len(text) + 1 rounds bound the loop.
        for _ in range(len(text) + 2):
            if pos > len(text):
                break
            m = self.compiled.search(text, pos)
            if m is None:
                break
            out.append(text[last_end : m.start()])
            if m.end() > last_end or m.start() == 0:
                out.append(self.expand(template, m))
            last_end = m.end()
            pos = pos + 1 if pos + 1 > m.end() else m.end()
        out.append(text[last_end:])
        return "".join(out)

    def expand(self, template: str, m: re.Match[str]) -> str:
        """Go's ``Regexp.Expand`` of ``template`` for match ``m``."""
        out: list[str] = []
        rest = template
        while True:
            before, dollar, after = rest.partition("$")
            if not dollar:
                break
            out.append(before)
            rest = after
            if rest.startswith("$"):
                out.append("$")
                rest = rest[1:]
                continue
            parsed = _extract(rest)
            if parsed is None:
                out.append("$")
                continue
            name, num, rest = parsed
            index = num if num >= 0 else self._index_of(name)
            if index is not None and index < len(self.group_names):
                value = m.group(index)
                if value is not None:
                    out.append(value)
        out.append(rest)
        return "".join(out)

    def _index_of(self, name: str) -> int | None:
        for i, group in enumerate(self.group_names):
            if group == name:
                return i
        return None


def _is_name_char(c: str) -> bool:
    # Go: unicode.IsLetter, unicode.IsDigit (category Nd) or '_'.
    return c == "_" or unicodedata.category(c).startswith("L") or unicodedata.category(c) == "Nd"


def _extract(text: str) -> tuple[str, int, str] | None:
    """Go's ``extract``: (name, number or -1, rest) after a ``$``, None when malformed."""
    brace = text.startswith("{")
    body = text[1:] if brace else text
    i = 0
    while i < len(body) and _is_name_char(body[i]):
        i += 1
    if i == 0:
        return None
    name = body[:i]
    if brace:
        if i >= len(body) or body[i] != "}":
            return None
        i += 1
    num = int(name) if name.isascii() and name.isdigit() and len(name) <= 8 else -1
    if name[0] == "0" and len(name) > 1:
        num = -1
    return name, num, body[i:]


@dataclass
class _Group:
    flags: frozenset[str]
    #: Capture groups opened before this group: more at its end means it holds captures.
    captures_before: int = 0


@dataclass
class _Translator:
    pattern: str
    out: list[str] = field(default_factory=list)
    groups: list[_Group] = field(default_factory=list)
    names: list[str | None] = field(default_factory=lambda: [None])
    pos: int = 0

    def refuse(self, construct: str, why: str) -> GoRegexpError:
        return GoRegexpError(
            f"regex {self.pattern!r}: {construct} at character {self.pos + 1}: {why}"
        )

    @property
    def flags(self) -> frozenset[str]:
        return self.groups[-1].flags

    def literal(self, c: str) -> str:
        text = re.escape(c)
        if "i" in self.flags and c.lower() != c.upper():
            return f"(?i:{text})"
        return text

    def run(self) -> str:
        self.groups.append(_Group(frozenset(), 0))
        p = self.pattern
        while self.pos < len(p):
            c = p[self.pos]
            if c == "\\":
                self.escape()
                continue
            if c == "[":
                self.char_class()
                continue
            if c == "(":
                self.open_group()
                continue
            if c == ")":
                if len(self.groups) == 1:
                    raise self.refuse("')'", "unbalanced parenthesis (Go refuses the pattern)")
                group = self.groups.pop()
                self.out.append(")")
                self.pos += 1
                self.repetition_suffix(holds_captures=len(self.names) > group.captures_before)
                continue
            if c in "*+?":
                raise self.refuse(repr(c), "repetition with nothing to repeat (Go refuses it)")
            if c == "{":
                if _REPEAT.match(p, self.pos):
                    raise self.refuse(repr(c), "repetition with nothing to repeat (Go refuses it)")
                self.out.append("\\{")
                self.pos += 1
                self.repetition_suffix()
                continue
            if c == "|":
                self.out.append("|")
            elif c == ".":
                self.out.append("(?s:.)" if "s" in self.flags else "[^\\n]")
            elif c == "^":
                self.out.append("(?:(?<=\\n)|\\A)" if "m" in self.flags else "\\A")
            elif c == "$":
                self.out.append("(?:(?=\\n)|\\Z)" if "m" in self.flags else "\\Z")
            else:
                self.out.append(self.literal(c))
            self.pos += 1
            if c not in "|^$":
                self.repetition_suffix()
            else:
                self.forbid_repetition()
        if len(self.groups) != 1:
            raise self.refuse("end of pattern", "missing ')' (Go refuses the pattern)")
        return "".join(self.out)

    def forbid_repetition(self) -> None:
        if self.pos < len(self.pattern) and (
            self.pattern[self.pos] in "*+?" or _REPEAT.match(self.pattern, self.pos)
        ):
            raise self.refuse(
                "repetition of an anchor or '|'",
                "Go and Python disagree on it; repeat a group instead",
            )

    def repetition_suffix(self, *, holds_captures: bool = False) -> None:
        """An optional repetition operator after an atom, and its lazy '?'. A group holding
        captures may only be optional: which iteration's text a repeated capture reports is
        where backtracking engines and RE2 are not proven to agree."""
        p = self.pattern
        if self.pos >= len(p):
            return
        c = p[self.pos]
        repeat = _REPEAT.match(p, self.pos)
        if holds_captures and (c in "*+" or (repeat and repeat.group(0) not in ("{0,1}", "{1}"))):
            raise self.refuse(
                "a repeated group with captures",
                "its captures are not proven to match Go's; capture around the repetition",
            )
        if c in "*+?":
            self.out.append(c)
            self.pos += 1
        else:
            m = _REPEAT.match(p, self.pos)
            if m is None:
                return
            low = int(m.group(1))
            high = m.group(3)
            if low > _GO_MAX_REPEAT or (high and int(high) > _GO_MAX_REPEAT):
                raise self.refuse(m.group(0), "Go refuses repeat counts above 1000")
            if high and int(high) < low:
                raise self.refuse(m.group(0), "Go refuses a repeat with max < min")
            self.out.append(m.group(0))
            self.pos = m.end()
        if self.pos < len(p) and p[self.pos] == "?":
            self.out.append("?")
            self.pos += 1
        if self.pos < len(p) and (p[self.pos] in "*+?" or _REPEAT.match(p, self.pos)):
            raise self.refuse(
                "a second repetition operator",
                "RE2 has no possessive or nested repetition (Go refuses the pattern)",
            )

    def open_group(self) -> None:
        p = self.pattern
        if not p.startswith("(?", self.pos):
            self.groups.append(_Group(self.flags, len(self.names)))
            self.names.append(None)
            self.out.append("(")
            self.pos += 1
            return
        name_match = re.compile(r"\(\?P?<([^>]*)>").match(p, self.pos)
        if name_match and not p.startswith(("(?<=", "(?<!"), self.pos):
            name = name_match.group(1)
            if not _NAME.match(name):
                raise self.refuse(f"group name {name!r}", "only ASCII identifiers are translated")
            if name in self.names:
                raise self.refuse(f"group name {name!r}", "a group name may be used once")
            self.groups.append(_Group(self.flags, len(self.names)))
            self.names.append(name)
            self.out.append(f"(?P<{name}>")
            self.pos = name_match.end()
            return
        flags = _FLAGS.match(p, self.pos)
        if flags:
            on, off, end = flags.group(1), flags.group(2) or "", flags.group(3)
            if "U" in on + off:
                raise self.refuse("flag U", "the ungreedy flag is not translated")
            if flags.group(0) in ("(?)", "(?:") and end == ")":
                raise self.refuse("'(?)'", "empty flag group (Go refuses it)")
            new = (self.flags | set(on)) - set(off)
            self.pos = flags.end()
            if end == ":":
                self.groups.append(_Group(frozenset(new), len(self.names)))
                self.out.append("(?:")
            else:
                self.groups[-1].flags = frozenset(new)
            return
        construct = p[self.pos : self.pos + 4]
        raise self.refuse(
            f"{construct!r}",
            "RE2 has no lookaround, backreference, atomic group, conditional or comment "
            "(Go refuses the pattern)",
        )

    def escape(self) -> None:
        p = self.pattern
        if self.pos + 1 >= len(p):
            raise self.refuse("trailing '\\'", "Go refuses the pattern")
        c = p[self.pos + 1]
        self.pos += 2
        if c == "Q":
            end = p.find("\\E", self.pos)
            text = p[self.pos :] if end < 0 else p[self.pos : end]
            self.pos = len(p) if end < 0 else end + 2
            self.out.append("(?:" + "".join(self.literal(ch) for ch in text) + ")")
            if text:
                self.repetition_suffix()
            return
        if c in "dws":
            self.out.append(f"[{_PERL_CLASSES[c]}]")
        elif c in "DWS":
            self.out.append(f"[^{_PERL_CLASSES[c.lower()]}]")
        elif c == "b":
            self.out.append(_BOUNDARY)
            self.forbid_repetition()
            return
        elif c == "B":
            self.out.append(_NOT_BOUNDARY)
            self.forbid_repetition()
            return
        elif c == "A":
            self.out.append("\\A")
            self.forbid_repetition()
            return
        elif c == "z":
            self.out.append("\\Z")
            self.forbid_repetition()
            return
        else:
            self.out.append(self.literal(self.escaped_char(c)))
        self.repetition_suffix()

    def escaped_char(self, c: str) -> str:
        """The character an escape other than a class or an assertion stands for."""
        p = self.pattern
        if c in _SIMPLE_ESCAPES:
            return {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}[c]
        if c == "x":
            m = re.compile(r"\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2})").match(p, self.pos)
            if m is None:
                raise self.refuse("'\\x'", "malformed hex escape (Go refuses the pattern)")
            self.pos = m.end()
            value = int(m.group(1) or m.group(2), 16)
            if value > 0x10FFFF:
                raise self.refuse("'\\x{..}'", "beyond Unicode (Go refuses the pattern)")
            return chr(value)
        if c.isascii() and not c.isalnum():
            return c
        if c in "pP":
            raise self.refuse(f"'\\{c}'", "Unicode classes are not translated")
        if c.isdigit():
            raise self.refuse(
                f"'\\{c}'", "RE2 has no backreferences; octal escapes are not translated"
            )
        raise self.refuse(f"'\\{c}'", "not an escape Go knows (Go refuses the pattern)")

    def char_class(self) -> None:
        p = self.pattern
        start = self.pos
        self.pos += 1
        negate = p.startswith("^", self.pos)
        if negate:
            self.pos += 1
        members: list[str] = []
        first = True
        while True:
            if self.pos >= len(p):
                self.pos = start
                raise self.refuse("'['", "missing ']' (Go refuses the pattern)")
            if p[self.pos] == "]" and not first:
                self.pos += 1
                break
            first = False
            if p.startswith("[:", self.pos):
                raise self.refuse("a POSIX class '[:...:]'", "POSIX classes are not translated")
            low, perl = self.class_item()
            if perl is not None:
                members.append(perl)
                continue
            if p.startswith("-", self.pos) and not p.startswith("-]", self.pos):
                self.pos += 1
                high, perl = self.class_item()
                if perl is not None:
                    raise self.refuse("a class range", "a range cannot end in a Perl class")
                if ord(high) < ord(low):
                    raise self.refuse(f"range {low}-{high}", "invalid range (Go refuses it)")
                members.append(f"{re.escape(low)}-{re.escape(high)}")
            else:
                members.append(re.escape(low))
        cls = "[" + ("^" if negate else "") + "".join(members) + "]"
        self.out.append(f"(?i:{cls})" if "i" in self.flags else cls)
        self.repetition_suffix()

    def class_item(self) -> tuple[str, str | None]:
        """One character of a class, or ("", members) for a Perl class such as ``\\d``."""
        p = self.pattern
        c = p[self.pos]
        if c != "\\":
            self.pos += 1
            return c, None
        if self.pos + 1 >= len(p):
            raise self.refuse("trailing '\\'", "Go refuses the pattern")
        e = p[self.pos + 1]
        self.pos += 2
        if e in "dws":
            return "", _PERL_CLASSES[e]
        if e in "DWS":
            raise self.refuse(
                f"'\\{e}' inside a class", "negated classes inside [] are not translated"
            )
        if e in "bBAzQ":
            raise self.refuse(f"'\\{e}' inside a class", "Go refuses it")
        return self.escaped_char(e), None


def translate_go_regexp(pattern: str) -> tuple[str, tuple[str | None, ...]]:
    """The Python pattern with Go's meaning, and the group names (index 0 is the match)."""
    translator = _Translator(pattern)
    python = translator.run()
    return python, tuple(translator.names)


def compile_go_regexp(pattern: str) -> GoRegexp:
    """Translate and compile ``pattern``; :class:`GoRegexpError` names what is refused."""
    python, names = translate_go_regexp(pattern)
    try:
        compiled = re.compile(python)
    except re.error as err:
        raise GoRegexpError(f"regex {pattern!r}: {err}") from None
    if compiled.groups != len(names) - 1:
        raise GoRegexpError(f"regex {pattern!r}: group count differs after translation")
    return GoRegexp(pattern, python, names, compiled)


@lru_cache(maxsize=1024)
def cached_go_regexp(pattern: str) -> GoRegexp:
    """:func:`compile_go_regexp`, once per pattern: the oracle matches every probe against the
    same few route and condition patterns."""
    return compile_go_regexp(pattern)
