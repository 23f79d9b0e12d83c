"""Temperatures between 0 and 0.05 get a 400 with the settings' own message, never a 500 (issue 13, items 5 and 8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import ServeFactory


@pytest.mark.parametrize("temperature", [1e-300, 1e-40, 0.049])
def test_a_temperature_below_the_floor_is_a_400_naming_it(
    serve: ServeFactory, tiny_engine: Any, temperature: float
) -> None:
    server = serve(tiny_engine)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            "/v1/completions", json={"prompt": "Привет", "max_tokens": 3, "temperature": temperature}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith(f"temperature = {temperature!r} is below 0.05")
        assert error["param"] == "temperature"
        # The floor leaves greedy decoding alone: temperature 0 is the OpenAI API's greedy.
        greedy = client.post("/v1/completions", json={"prompt": "Привет", "max_tokens": 3, "temperature": 0})
        assert greedy.status_code == 200, greedy.text
