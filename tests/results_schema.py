"""The shipped JSON Schema of results.json, for tests: every document a test reads from a run
is validated against it (imported by test modules; pytest puts ``tests/`` on ``sys.path``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema

from harness.results.document import SCHEMA_PATH


@cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(document: Mapping[str, Any]) -> list[str]:
    """Where ``document`` breaks the schema (JSON path: message), at most 20."""
    errors = sorted(validator().iter_errors(document), key=lambda e: e.json_path)
    return [f"{e.json_path}: {e.message[:300]}" for e in errors[:20]]


def assert_valid(document: Mapping[str, Any]) -> None:
    errors = schema_errors(document)
    assert not errors, "results.json breaks results.schema.json:\n" + "\n".join(errors)
