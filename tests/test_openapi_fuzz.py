"""Schemathesis over our own OpenAPI document: no 5xx, no response that breaks its schema.

Every endpoint a later package adds is fuzzed here too, as an admin (who may call
almost everything), so the fuzzer gets past the role checks into the validation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


@pytest.fixture
def api_schema(app, db_session):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture
def admin_headers(auth):
    _, headers = auth("admin", "streamer", "buyer", "villager", "farmer")
    return headers


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_api_fail_or_break_its_contract(case, admin_headers):
    case.call_and_validate(
        headers=admin_headers,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            status_code_conformance,
        ],
    )
