"""Schemathesis, run from Python over the live server's own OpenAPI schema, finds no server errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import ServeFactory, queue_of

# Enough to reach every operation with valid and invalid bodies in about a minute on two cores.
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 60}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_generated_requests_get_no_server_errors(serve: ServeFactory, tiny_engine: Any, mode: GenerationMode) -> None:
    # Small limits keep each generated generation short on the tiny model (64-token context).
    server = serve(tiny_engine, max_tokens_limit=32, max_queue=4)
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    calls: list[int] = []
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        # Valid requests must also get the documented statuses, content types and bodies.
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    else:
        # Strict types (issue 13): a body that breaks the schema ("stream": "yes", "max_tokens": true, a prompt
        # list of 17) is refused with a 4xx, never generated from.
        checks += [negative_data_rejection]

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=server.url, checks=checks, timeout=60)
        calls.append(response.status_code)

    run()
    print(f"\n[schemathesis {mode.value}] {len(calls)} requests, statuses {sorted(Counter(calls).items())}")
    assert len(calls) >= EXAMPLES[mode]
    assert all(status < 500 for status in calls)
    if mode is GenerationMode.POSITIVE:
        assert any(status == 200 for status in calls)  # some generated requests really generated
        assert queue_of(server).stats()["failed"] == 0
    else:
        assert any(400 <= status < 500 for status in calls)
