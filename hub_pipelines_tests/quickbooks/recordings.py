"""The real QuickBooks answers recorded by Nango (shared/fixtures/real/quickbooks), read once."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hub_pipelines_tests.conftest import REAL_FIXTURES

QUICKBOOKS = REAL_FIXTURES / "quickbooks"
REALM = "9341457021722202"


@cache
def recorded(name: str) -> tuple[Any, ...]:
    """The response bodies of a recording (`api.<method>.<path>.response`: one or a list)."""
    api = json.loads((QUICKBOOKS / name).read_text())["api"]
    bodies = []
    for paths in api.values():
        for recording in paths.values():
            for item in recording if isinstance(recording, list) else [recording]:
                bodies.append(item["response"])
    return tuple(bodies)


def queried(name: str, entity: str) -> list[dict[str, Any]]:
    """The rows of a recorded query answer, as fresh copies (tests may change them)."""
    (body,) = recorded(name)
    return json.loads(json.dumps(body["QueryResponse"][entity]))


def real_invoices() -> dict[str, dict[str, Any]]:
    return {row["Id"]: row for row in queried("nango_invoices.test.json", "Invoice")}


def real_customers() -> dict[str, dict[str, Any]]:
    return {row["Id"]: row for row in queried("nango_customers.test.json", "Customer")}


def real_invoice_ids() -> list[str]:
    """For parametrising at collection: a placeholder when the recordings are absent (the
    `real_fixtures` mark then skips the test, saying how to get them)."""
    return sorted(real_invoices()) if QUICKBOOKS.is_dir() else ["recordings-absent"]
