"""schemathesis over the live OpenAPI document: no 5xx, and every answer matches the schema.

Runs against a real server on loopback with the admin token, so generated
requests reach the handlers (not just the auth check); node routes get
random sealed bodies, which must all be refused with a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from control_harness import POLICY, ControlServer
from hypothesis import HealthCheck, settings

from policyc.control import init_state


@pytest.fixture(scope="module")
def fuzzed_control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlServer]:
    state: Path = tmp_path_factory.mktemp("schema") / "state"
    init_state(state, POLICY)
    server = ControlServer(state, poll_timeout=0.5).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def api_schema(fuzzed_control: ControlServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_control.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


# Semantic refusals of schema-valid input (an invalid policy 422, a stale If-Match 412, a box
# that does not open 401) are the API's contract, so "positive data is accepted" is not.
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance,
          schemathesis.checks.response_headers_conformance,
          schemathesis.checks.negative_data_rejection]


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms(case: schemathesis.Case, fuzzed_control: ControlServer) -> None:
    case.call_and_validate(base_url=fuzzed_control.url,
                           headers={"Authorization": f"Bearer {fuzzed_control.token}"},
                           checks=CHECKS)
