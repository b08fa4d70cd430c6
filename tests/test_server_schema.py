"""schemathesis against the server's OpenAPI schema: a bounded number of generated requests per
operation (real sandboxes included), no 5xx, every answer as the schema says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rollcage.server.app import ServerSettings, create_app  # noqa: E402
from rollcage.server.sample_data import write_sample_run  # noqa: E402

TOKEN = "schema-token"
EXAMPLES = int(os.environ.get("ROLLCAGE_SCHEMA_EXAMPLES", "25"))
_ROOT = Path(os.environ["ROLLCAGE_STATE_DIR"]) / "schemathesis"


def _app():  # type: ignore[no-untyped-def]
    from rollcage.events import EventStore

    _ROOT.mkdir(parents=True, exist_ok=True)
    store = EventStore(_ROOT / "events.db")
    write_sample_run(_ROOT / "runs", store)
    store.close()
    return create_app(ServerSettings(token=TOKEN, event_db=_ROOT / "events.db", runs_dir=_ROOT / "runs",
                                     max_sandboxes=3, max_upload_bytes=64 * 1024))  # fmt: skip


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/alerts/stream")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _close_sandboxes() -> Iterator[None]:
    yield
    APP.state.rollcage.close()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)
