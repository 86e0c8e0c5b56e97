"""The systems whose webhooks the hub takes, each by the `WebhookProtocol` of its own
`<system>/webhooks.py`: the one list that the hub service (service/webhooks.py,
service/app_webhooks.py), the landed notices (service/notices.py) and the landing sensor
(landing/notices.py) read. Kept apart from `systems.py` so that the service loads no Dagster."""

from __future__ import annotations

from hub_pipelines.connectors.webhooks import WebhookProtocol
from hub_pipelines.quickbooks import webhooks as quickbooks
from hub_pipelines.xero import webhooks as xero
from hub_pipelines.zoho_books import webhooks as zoho_books

WEBHOOKS: dict[str, WebhookProtocol] = {
    protocol.system: protocol
    for protocol in (zoho_books.PROTOCOL, quickbooks.PROTOCOL, xero.PROTOCOL)
}
