"""QuickBooks webhooks: `intuit-signature` checks and both payload shapes into `ChangeNotice`s."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub_pipelines.connectors.webhooks import ChangeNotice
from hub_pipelines.quickbooks.webhooks import parse_notices, verify_signature

# Intuit's sample notification, byte for byte as signed below.
LEGACY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":[{"name":'
    b'"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
VERIFIER = "verifier-token-from-the-portal"
# Computed apart from the code under test:
#   printf '%s' "$LEGACY" | openssl dgst -sha256 -hmac "$VERIFIER" -binary | base64
SIGNATURE = "dfpI9A1g2nBgx9NKvZpO4lMjU0texVXRGr29c2qkwlo="


def test_a_good_signature_verifies():
    assert verify_signature(VERIFIER, LEGACY, SIGNATURE)
    assert verify_signature(VERIFIER, LEGACY, f" {SIGNATURE}\n")  # header whitespace


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        ("another-verifier", LEGACY, SIGNATURE),  # wrong key
        (VERIFIER, LEGACY.replace(b'"id":"1"', b'"id":"2"'), SIGNATURE),  # body changed
        (VERIFIER, LEGACY, None),  # header missing
        (VERIFIER, LEGACY, ""),
        (VERIFIER, LEGACY, "not base64 at all!"),
        (VERIFIER, LEGACY, SIGNATURE[:-4] + "AAA="),  # one byte off
        ("", LEGACY, SIGNATURE),  # no verifier configured: nothing verifies
    ],
)
def test_a_bad_or_missing_signature_does_not_verify(secret, body, header):
    assert not verify_signature(secret, body, header)


def test_intuits_legacy_sample_parses():
    (notice,) = parse_notices(LEGACY)
    assert notice == ChangeNotice(
        system="quickbooks",
        account_id="1185883450",
        entity="customers",
        external_id="1",
        operation="created",
        occurred_at=datetime(2015, 10, 5, 14, 42, 19, tzinfo=timezone(-timedelta(hours=7))),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        notice.external_id = "2"  # type: ignore[misc]


def test_legacy_notifications_of_several_realms_entities_and_operations():
    body = {
        "eventNotifications": [
            {
                "realmId": "111",
                "dataChangeEvent": {
                    "entities": [
                        {"name": "Invoice", "id": "130", "operation": "Void"},
                        {"name": "Invoice", "id": "131", "operation": "Delete"},
                        {"name": "Invoice", "id": "132", "operation": "Emailed"},
                        {"name": "Payment", "id": "9", "operation": "Create"},
                    ]
                },
            },
            {
                "realmId": "222",
                "dataChangeEvent": {
                    "entities": [
                        {
                            "name": "Customer",
                            "id": "5",
                            "operation": "Merge",
                            "lastUpdated": "2025-03-01T10:00:00.000Z",
                        }
                    ]
                },
            },
        ]
    }
    notices = parse_notices(json.dumps(body).encode())
    assert [(n.account_id, n.entity, n.external_id, n.operation) for n in notices] == [
        ("111", "invoices", "130", "voided"),
        ("111", "invoices", "131", "deleted"),
        ("111", "invoices", "132", "emailed"),
        ("111", None, "9", "created"),  # a payment: not imported
        ("222", "customers", "5", "merged"),
    ]
    assert notices[0].occurred_at is None
    assert notices[-1].occurred_at == datetime(2025, 3, 1, 10, tzinfo=UTC)


def cloud_event(realm: str, kind: str, entity_id: str, **changes) -> dict:
    event = {
        "specversion": "1.0",
        "id": f"88cd52aa-{entity_id}",
        "source": "intuit.dsnBgbseZ",
        "type": kind,
        "datacontenttype": "application/json",
        "time": "2025-09-10T21:31:25.179Z",
        "intuitentityid": entity_id,
        "intuitaccountid": realm,
        "data": {},
    }
    event.update(changes)
    return event


def test_a_cloudevents_array_mixing_two_realms_routes_each_event_by_its_own_account():
    body = [
        cloud_event("310687", "qbo.invoice.created.v1", "95"),
        cloud_event("999001", "qbo.customer.updated.v1", "7"),
        cloud_event("310687", "qbo.invoice.voided.v1", "96"),
        cloud_event("999001", "qbo.payment.deleted.v1", "3"),
    ]
    notices = parse_notices(json.dumps(body).encode())
    assert [(n.account_id, n.entity, n.external_id, n.operation) for n in notices] == [
        ("310687", "invoices", "95", "created"),
        ("999001", "customers", "7", "updated"),
        ("310687", "invoices", "96", "voided"),
        ("999001", None, "3", "deleted"),
    ]
    assert {n.system for n in notices} == {"quickbooks"}
    assert notices[0].occurred_at == datetime(2025, 9, 10, 21, 31, 25, 179000, tzinfo=UTC)


def test_a_single_unwrapped_cloudevent_and_an_empty_array():
    (notice,) = parse_notices(json.dumps(cloud_event("1", "qbo.customer.merged.v1", "4")).encode())
    assert (notice.entity, notice.operation) == ("customers", "merged")
    assert parse_notices(b"[]") == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"hello": 1}', "neither a CloudEvents array nor"),
        (b'"text"', "neither a CloudEvents array nor"),
        (b'{"eventNotifications": {}}', "eventNotifications: expected a list"),
        (b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}', r"\.realmId"),
        (
            b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {}}]}',
            r"dataChangeEvent\.entities: expected a list",
        ),
        (
            b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": '
            b'[{"name": "Invoice", "id": "1", "operation": "Explode"}]}}]}',
            r"entities\[0\]\.operation: unknown operation",
        ),
        (b"[1]", r"\[0\]: not an object"),
        (json.dumps([cloud_event("1", "invoice.created", "2")]).encode(), r"\[0\]\.type"),
        (json.dumps([cloud_event("1", "qbo.invoice.exploded.v1", "2")]).encode(), "unknown op"),
        (
            json.dumps([cloud_event("1", "qbo.invoice.created.v1", "2", intuitaccountid=None)]),
            r"\[0\]\.intuitaccountid",
        ),
        (
            json.dumps([cloud_event("1", "qbo.invoice.created.v1", "2", time="yesterday")]),
            r"\[0\]\.time: not a timestamp",
        ),
    ],
)
def test_a_body_of_another_shape_is_refused_naming_the_problem(body, problem):
    raw = body if isinstance(body, bytes) else body.encode()
    with pytest.raises(ValueError, match=problem):
        parse_notices(raw)
