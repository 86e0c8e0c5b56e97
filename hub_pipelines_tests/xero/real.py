"""The real Xero payloads in shared/fixtures/real/xero: nango recordings and OpenAPI examples."""

from __future__ import annotations

import json
from typing import Any

from hub_pipelines_tests.conftest import REAL_FIXTURES

XERO = REAL_FIXTURES / "xero"


def document(name: str) -> Any:
    return json.loads((XERO / name).read_text(encoding="utf-8"))


def recordings(name: str, path: str, method: str = "get") -> list[dict[str, Any]]:
    """A nango recording's calls of `path` (`api.<method>.<path>`: one, or a list of them), each
    with its `response` body, `status`, `headers` and `request`."""
    recorded = document(name)["api"][method][path]
    return recorded if isinstance(recorded, list) else [recorded]


def responses(name: str, path: str) -> list[Any]:
    return [call["response"] for call in recordings(name, path)]


def recorded_invoices() -> list[dict[str, Any]]:
    (body,) = responses("nango_invoices.test.json", "/api.xro/2.0/Invoices")
    return body["Invoices"]


def recorded_contacts() -> list[dict[str, Any]]:
    first, _empty = responses("nango_contacts.test.json", "/api.xro/2.0/Contacts")
    return first["Contacts"]


# The recorded organisation is Xero's US demo company; its tax rates were not recorded. These are
# its rates' shape (GET /TaxRates), with rates that reproduce the recorded line amounts: 8.25 % on
# OUTPUT (41.25 on 500.00), 8.75 % on TAX001 (1.75 on 19.95). The component names are a US
# sales-tax split: "State Tax" must not be read as SGST.
US_DEMO_TAX_RATES = [
    {
        "Name": "Tax on Sales",
        "TaxType": "OUTPUT",
        "Status": "ACTIVE",
        "EffectiveRate": 8.25,
        "DisplayTaxRate": 8.25,
        "TaxComponents": [
            {"Name": "State Tax", "Rate": 6.25, "IsCompound": False, "IsNonRecoverable": False},
            {"Name": "City Tax", "Rate": 2.0, "IsCompound": False, "IsNonRecoverable": False},
        ],
    },
    {
        "Name": "Airport Tax",
        "TaxType": "TAX001",
        "Status": "ACTIVE",
        "EffectiveRate": 8.75,
        "TaxComponents": [{"Name": "Airport Tax", "Rate": 8.75, "IsCompound": False}],
    },
    {
        "Name": "Tax Exempt",
        "TaxType": "NONE",
        "Status": "ACTIVE",
        "EffectiveRate": 0.0,
        "TaxComponents": [{"Name": "Tax Exempt", "Rate": 0.0, "IsCompound": False}],
    },
]
