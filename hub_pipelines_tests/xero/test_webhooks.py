"""Xero webhooks: signatures on the raw bytes, the intent-to-receive handshake, and the real
example payloads as change notices."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from hub_pipelines.connectors.webhooks import ChangeNotice
from hub_pipelines.xero.webhooks import (
    is_intent_to_receive,
    parse_notices,
    signature,
    verify_signature,
)
from hub_pipelines_tests.xero.real import XERO

KEY = "n8jzB1jiL7lV4bM2K6r0pS5hX9cT3wQy"  # a webhook signing key's shape (made up)
INTENT_TO_RECEIVE = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"QWERTY"}'


def test_a_signature_is_base64_hmac_sha256_of_the_raw_body():
    expected = base64.b64encode(
        hmac.new(KEY.encode(), INTENT_TO_RECEIVE, hashlib.sha256).digest()
    ).decode()
    assert signature(KEY, INTENT_TO_RECEIVE) == expected
    assert verify_signature(KEY, INTENT_TO_RECEIVE, expected)
    assert verify_signature(KEY, INTENT_TO_RECEIVE, f" {expected}\r\n")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bm90IHRoZSBzaWduYXR1cmU=",
        signature("another key", INTENT_TO_RECEIVE),
        "sïgnature",  # not ASCII: refused, not an exception
    ],
)
def test_bad_or_missing_signatures_are_refused(header):
    assert not verify_signature(KEY, INTENT_TO_RECEIVE, header)


def test_the_signature_covers_the_exact_bytes():
    reformatted = json.dumps(json.loads(INTENT_TO_RECEIVE)).encode()  # same JSON, other bytes
    assert not verify_signature(KEY, reformatted, signature(KEY, INTENT_TO_RECEIVE))
    assert not verify_signature("", INTENT_TO_RECEIVE, signature("", INTENT_TO_RECEIVE))


def test_the_intent_to_receive_payload():
    payload = json.loads(INTENT_TO_RECEIVE)
    assert is_intent_to_receive(payload)
    assert parse_notices(INTENT_TO_RECEIVE) == []
    assert not is_intent_to_receive({"events": [{"resourceId": "x"}]})
    assert not is_intent_to_receive({})


@pytest.mark.real_fixtures
def test_the_contact_update_example():
    body = (XERO / "xero_webhooks_openapi_WebhookEvent_contactUpdate_example.json").read_bytes()
    assert not is_intent_to_receive(json.loads(body))
    assert verify_signature(KEY, body, signature(KEY, body))
    assert parse_notices(body) == [
        ChangeNotice(
            system="xero",
            account_id="c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
            entity="customers",
            external_id="717f2bfc-c6d4-41fd-b238-3f2f0c0cf777",
            operation="updated",
            occurred_at=datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=UTC),
        )
    ]


@pytest.mark.real_fixtures
def test_a_credit_note_event_is_kept_without_an_entity():
    body = (XERO / "xero_webhooks_openapi_creditNotes_creditNoteCreate_example.json").read_bytes()
    (notice,) = parse_notices(body)
    assert notice.entity is None and notice.operation == "created"
    assert notice.external_id == "55d84274-a3da-4829-a7c0-0cab601b95cc"
    assert notice.account_id == "aef86862-2015-4b6b-88bc-d89032cecc50"
    assert notice.occurred_at == datetime(2025, 12, 2, 0, 44, 9, 923000, tzinfo=UTC)


def test_invoice_events_and_unknown_types():
    event = {
        "resourceId": "046d8a6d-1ae1-4b4d-9340-5601bdf41b87",
        "eventCategory": "INVOICE",
        "eventType": "CREATE",
        "tenantId": "t",
    }
    other = event | {"eventType": "ARCHIVE", "eventCategory": "subscription"}
    created, unknown = parse_notices(json.dumps({"events": [event, other]}).encode())
    assert (created.entity, created.operation, created.occurred_at) == ("invoices", "created", None)
    # Anything but CREATE is answered the same way: re-fetch the record.
    assert (unknown.entity, unknown.operation) == (None, "updated")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected an object"),
        (b'{"entropy": "x"}', "events: expected a list"),
        (b'{"events": ["x"]}', r"events\[0\]: expected an object"),
        (b'{"events": [{"eventCategory": "CONTACT", "eventType": "UPDATE"}]}', "tenantId"),
        (
            b'{"events": [{"eventCategory": "CONTACT", "eventType": "UPDATE", "tenantId": "t"}]}',
            r"events\[0\]\.resourceId",
        ),
        (
            b'{"events": [{"eventCategory": "CONTACT", "eventType": "UPDATE", "tenantId": "t",'
            b' "resourceId": "r", "eventDateUtc": "yesterday"}]}',
            "eventDateUtc: not a timestamp",
        ),
    ],
)
def test_bad_payloads_are_refused_naming_the_problem(body, problem):
    with pytest.raises(ValueError, match=problem):
        parse_notices(body)
