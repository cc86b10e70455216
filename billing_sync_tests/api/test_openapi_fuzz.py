"""schemathesis over /openapi.json against the API under a real uvicorn (issue 17): for
generated valid and invalid requests, never a 500, and every response (status, content
type, body, headers) as the document says. Bounded: a fixed number of examples per
operation and mode, no example database, no shrinking deadline."""

from __future__ import annotations

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from billing_sync_tests.api.conftest import Synced

pytestmark = pytest.mark.integration

EXAMPLES = 25  # per operation and generation mode: ~300 requests in all


def _fuzz(
    strategy: st.SearchStrategy[schemathesis.Case],
    served: str,
    headers: dict[str, str],
    *,
    excluded: list[CheckFunction],
    ready: bool,
) -> int:
    """Call and validate ``EXAMPLES`` generated cases; how many were called."""
    calls = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        response = case.call_and_validate(
            base_url=served,
            headers=headers,
            timeout=30,
            excluded_checks=excluded,
        )
        assert response.status_code in ((200, 503) if ready else range(200, 500))

    call()
    return calls


def test_generated_requests_get_documented_answers_and_never_a_500(
    served: str, synced: Synced
) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/accounts/{system}/{account_id}",
        "/v1/accounts/{system}/{account_id}/activity",
        "/v1/accounts/search",
        "/v1/freshness",
        "/healthz",
        "/readyz",
    }
    # A real account among the generated ones, so that 200 answers are checked too.
    system, account_id = "icoms", None
    with psycopg.connect(synced.urls.warehouse) as conn:
        row = conn.execute(
            "SELECT site_id || ':' || account_number FROM serve.account_360"
            " WHERE source_system = 'icoms' LIMIT 1"
        ).fetchone()
    assert row is not None
    account_id = row[0]
    calls = 0
    for operation in operations:
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.definition.raw.get("parameters"):  # nothing to get wrong otherwise
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            known = {"system": system, "account_id": account_id}
            paths = {k: v for k, v in known.items() if "{" + k + "}" in operation.path}
            strategies = [operation.as_strategy(generation_mode=mode)]
            # /readyz answers 503 by design while a tier is behind its SLA.
            ready = operation.path == "/readyz"
            if paths and mode is schemathesis.GenerationMode.POSITIVE:
                strategies.append(
                    operation.as_strategy(generation_mode=mode, path_parameters=paths)
                )

            excluded = [not_a_server_error] if ready else []
            if operation.path.endswith("/activity"):
                # A cursor is opaque: a schema-valid string this server did not sign is
                # refused (400) by design, which this check would count as a failure.
                excluded.append(positive_data_acceptance)
            calls += _fuzz(
                st.one_of(strategies), served, synced.headers(), excluded=excluded, ready=ready
            )
    assert calls >= EXAMPLES * 4  # parameterless operations exhaust their few cases early
