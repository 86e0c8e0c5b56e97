"""Classification of failures that did not come from a connector's own rules."""

import httpx
import psycopg
import pytest

from hub_pipelines.connectors.errors import Category, SyncError, classify


def test_transport_and_warehouse_outages_are_retryable_network_failures():
    assert classify(httpx.ConnectError("refused")).category == Category.NETWORK
    with pytest.raises(psycopg.OperationalError) as outage:
        psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    error = classify(outage.value)
    assert error.category == Category.NETWORK and error.retryable
    assert "HUB_DATABASE_URL" in error.suggested_fix


def test_sync_errors_pass_through_and_unknown_errors_are_reported_as_ours():
    original = SyncError(Category.AUTH, "revoked")
    assert classify(original) is original
    unknown = classify(ZeroDivisionError("division by zero"))
    assert unknown.category == Category.MAPPING and not unknown.retryable
    assert "report it" in unknown.suggested_fix
