"""QuickBooks Online: the Source (streams, auth, limits), the connector on the kit's walk, and its
Dagster resource. Protocol facts live in `protocol`, the mapping in `mapping`.

- Auth: Intuit OAuth 2, HTTP Basic client credentials, refresh tokens that rotate: the kit's
  `OAuthTokenManager(rotating_refresh_tokens=True)` saves a rotated token before its access token
  is used, one refresh at a time per tenant config (the token store's lock). Every refresh asks
  for the 5-year hard expiry (`protocol.HARD_EXPIRY_HEADER`); the connector turns it into
  `refresh_token_expires_at`, which the token store keeps with the config, and warns in the run
  log when less than `HARD_EXPIRY_WARNING` is left (never naming the token).
- Reads: the query endpoint, `MetaData.LastUpdatedTime >= since` ordered by it (oldest first),
  in overlapping STARTPOSITION windows (a row edited mid-walk never makes another one skip), so
  the cursor commits with every page. Invoice rows carry their lines: no detail call.
- Incremental runs whose cursor is within CDC's 30 days ask `/cdc` instead: one call for the
  changes and the deletions (stubs → `Tombstone`s). An answer at CDC's 1,000-object cap may be
  incomplete: the run falls back to the query (deletions then wait for the next complete listing,
  which `imports.sync` makes every `complete_listing_days`).
- Limits: 500 requests a minute and 10 a second per realm; the token bucket spaces calls evenly
  at 450 a minute (~7.5 a second), under both. Every read is metered by Intuit: a run without
  changes costs one CDC (or query) call and one `COUNT(*)` per entity.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hub_pipelines.canonical import ConnectionTest, Entity, Invoice, ListedRecord, Page
from hub_pipelines.connectors.base import OverlappingWindows, parse_timestamp, to_decimal
from hub_pipelines.connectors.errors import Category, SyncError
from hub_pipelines.connectors.http import HttpClient, LogSink
from hub_pipelines.connectors.oauth import (
    BearerAuth,
    OAuthTokenManager,
    TokenSet,
    TokenStore,
    request_tokens,
)
from hub_pipelines.connectors.settings import HttpSettings
from hub_pipelines.connectors.source import ConnectorResource, HttpConnector
from hub_pipelines.connectors.walk import (
    ReadOutcome,
    Stream,
    Tombstone,
    VersionsLookup,
    Walk,
    changed_pages,
    mapped,
)
from hub_pipelines.quickbooks import protocol
from hub_pipelines.quickbooks.mapping import (
    MappingError,
    TaxRateInfo,
    map_customer,
    map_invoice,
    tax_rate_info,
)
from hub_pipelines.tenants.models import QuickBooksConfig

PACED_REQUESTS_PER_MINUTE = 450  # evenly spaced: ~7.5 a second, under 10/s and 500/min
HARD_EXPIRY_WARNING = timedelta(days=30)
EXPIRES_AT = "refresh_token_expires_at"  # the config field the token store fills from `extra`
MAPPING_FIX = (
    "Correct the field named in the message in QuickBooks, or report the payload "
    "(`hub errors show ID`) if the value is valid there."
)


def last_updated(row: Any) -> datetime | None:
    """A row's version: `MetaData.LastUpdatedTime` (the company's offset, whole seconds)."""
    meta = row.get("MetaData") if isinstance(row, dict) else None
    return parse_timestamp(meta.get("LastUpdatedTime")) if isinstance(meta, dict) else None


STREAMS: dict[str, Stream] = {
    "customers": Stream("customers", "Id", last_updated, commit="per_page"),
    "invoices": Stream(
        "invoices", "Id", last_updated, lambda row: to_decimal(row.get("TotalAmt")), "per_page"
    ),
}


def hard_expiry_warning(realm: str, expires_at: datetime, now: datetime) -> str:
    days = max((expires_at - now).days, 0)
    return (
        f"QuickBooks realm {realm}: the refresh token reaches Intuit's 5-year limit on "
        f"{expires_at:%Y-%m-%d} (in {days} days), after which every import fails with "
        "invalid_grant. Reconnect the company before then (docs/connectors/quickbooks.md, "
        "section 1) and store the new refresh token with "
        "`hub tenants add TENANT quickbooks --config FILE`."
    )


class QuickBooksConnector(HttpConnector):
    system = protocol.SYSTEM

    def __init__(
        self,
        config: QuickBooksConfig,
        token_store: TokenStore,
        *,
        versions: VersionsLookup,
        page_size: int = protocol.MAX_RESULTS,
        cursor_overlap: timedelta = timedelta(minutes=5),
        requests_per_minute: int = PACED_REQUESTS_PER_MINUTE,
        settings: HttpSettings | None = None,
        log: LogSink | None = None,
    ) -> None:
        self.config, self.realm, self.versions = config, config.realm_id, versions
        self.page_size = min(page_size, protocol.MAX_RESULTS)
        self.overlap = cursor_overlap
        self.log = log or logging.getLogger(__name__)
        api = str(config.api_base_url or protocol.API_HOSTS[config.environment]).rstrip("/")
        self.http = HttpClient(
            settings,
            base_url=f"{api}/v3/company/{self.realm}",
            headers={"Accept": "application/json"},
            rate_limit=requests_per_minute,
            check=protocol.response_check,
            logger=log,
        )
        self.http.redactor.register(*config.secrets())
        manager = OAuthTokenManager(
            token_store, self._refresh, redactor=self.http.redactor, rotating_refresh_tokens=True
        )
        self.auth = BearerAuth(manager)
        self._tax_rates: dict[str, TaxRateInfo] | None = None
        self._warned = False
        self.refresh_token_expires_at: datetime | None = None
        self._note_hard_expiry(config.refresh_token_expires_at)

    @property
    def quota_remaining(self) -> int | None:
        return None  # Intuit meters calls monthly and says nothing in its answers

    # --- transport --------------------------------------------------------------------------

    def _refresh(self, refresh_token: str) -> TokenSet:
        """Intuit's token endpoint: Basic client credentials, the hard expiry asked for."""
        secret = self.config.client_secret.get_secret_value()
        basic = base64.b64encode(f"{self.config.client_id}:{secret}".encode()).decode()
        tokens = request_tokens(
            self.http,
            str(self.config.token_url or protocol.TOKEN_URL),
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            headers={"Authorization": f"Basic {basic}", protocol.HARD_EXPIRY_HEADER: "true"},
            check=protocol.token_check,
        )
        seconds = tokens.extra.get(protocol.HARD_EXPIRY_FIELD)
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
            self._note_hard_expiry(expires_at)
            tokens = replace(tokens, extra={**tokens.extra, EXPIRES_AT: expires_at.isoformat()})
        return tokens

    def _note_hard_expiry(self, expires_at: datetime | None) -> None:
        """Remember the hard expiry and warn once per connector when it is near."""
        if expires_at is None:
            return
        self.refresh_token_expires_at = expires_at
        now = datetime.now(UTC)
        if expires_at - now < HARD_EXPIRY_WARNING and not self._warned:
            self._warned = True
            self.log.warning(hard_expiry_warning(self.realm, expires_at, now))

    def _get(self, path: str, params: dict[str, str]) -> Any:
        return self.http.get_json(
            path,
            params={**params, "minorversion": str(self.config.minor_version)},
            auth=self.auth,
            rate_key=f"quickbooks:{self.realm}",
        )

    def _query(self, text: str) -> Any:
        return self._get("/query", {"query": text})

    # --- contract ---------------------------------------------------------------------------

    def test_connection(self) -> ConnectionTest:
        started = datetime.now()
        body = self._get(f"/companyinfo/{self.realm}", {})
        latency = int((datetime.now() - started).total_seconds() * 1000)
        info = body.get("CompanyInfo") if isinstance(body, dict) else None
        if not isinstance(info, dict):
            return ConnectionTest(False, latency, message="the answer holds no CompanyInfo")
        expires = self.refresh_token_expires_at
        near = expires is not None and expires - datetime.now(UTC) < HARD_EXPIRY_WARNING
        message = hard_expiry_warning(self.realm, expires, datetime.now(UTC)) if near else None
        version = f"v3 minorversion {self.config.minor_version}"
        return ConnectionTest(True, latency, version, info.get("CompanyName"), message)

    def customers(self, cursor: str | None) -> Iterator[Page]:
        return self._changed_pages("customers", cursor)

    def invoices(self, cursor: str | None) -> Iterator[Page]:
        return self._changed_pages("invoices", cursor)

    def listing(self, entity: Entity) -> Iterator[ListedRecord]:
        stream = STREAMS[entity]
        for rows in self._windows(protocol.STREAM_ENTITIES[entity], None):
            for row in rows:
                if stream.row_id(row) is not None:
                    yield ListedRecord(stream.row_id(row), stream.row_total(row))

    def count(self, entity: Entity, near: int = 0) -> int:
        """`SELECT COUNT(*)`: one call."""
        body = self._query(protocol.count_query(protocol.STREAM_ENTITIES[entity]))
        try:
            return protocol.query_count(body)
        except ValueError as exc:
            raise SyncError(Category.SERVER, f"QuickBooks count of {entity}: {exc}") from None

    # --- the walk ---------------------------------------------------------------------------

    def _changed_pages(self, entity: Entity, cursor: str | None) -> Iterator[Page]:
        """The kit's walk over CDC's answer (a cursor within 30 days) or over the query."""
        stream, walk = STREAMS[entity], Walk(cursor, self.overlap)
        listed = self.new_listing(entity)
        read = self._reader(entity)
        common = {"walk": walk, "versions": self.versions, "listed": listed}
        changes = self._cdc(entity, walk.since) if walk.since is not None else None
        if changes is not None:  # one answer, in no promised order: committed at the end
            unsorted = replace(stream, commit="at_end")
            yield from changed_pages(unsorted, [changes], read, **common, complete=False)
            return
        pages = self._windows(protocol.STREAM_ENTITIES[entity], walk.since)
        yield from changed_pages(stream, pages, read, **common, complete=walk.since is None)

    def _cdc(self, entity: Entity, since: datetime) -> list[dict[str, Any]] | None:
        """The entity's changes since `since` from CDC, deleted stubs included; None when CDC
        cannot tell them all (beyond 30 days, or an answer at its 1,000-object cap)."""
        if not protocol.cdc_reaches(since, datetime.now(UTC)):
            return None
        name = protocol.STREAM_ENTITIES[entity]
        body = self._get("/cdc", protocol.cdc_params([name], since))
        try:
            changes = protocol.parse_cdc(body)
        except ValueError as exc:
            raise SyncError(Category.SERVER, f"QuickBooks CDC answer: {exc}") from None
        if protocol.cdc_is_full(changes):
            self.log.info(
                f"QuickBooks CDC answered {protocol.CDC_MAX_OBJECTS} objects, its cap: {entity} "
                "are read from the query instead; deletions wait for the next complete listing"
            )
            return None
        return changes.get(name, [])

    def _windows(self, name: str, since: datetime | None) -> OverlappingWindows:
        """A QuickBooks entity's query, oldest change first, in windows that overlap the rows
        already read."""

        def fetch(page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
            text = protocol.query_text(name, since, (page - 1) * per_page + 1, per_page)
            try:
                return protocol.query_records(self._query(text), name), per_page
            except ValueError as exc:
                raise SyncError(Category.SERVER, f"QuickBooks query answer: {exc}") from None

        return OverlappingWindows(
            fetch,
            lambda answer: answer[0],
            lambda answer: len(answer[0]) >= answer[1],  # a short page is the last
            key=last_updated,
            identity=STREAMS["customers"].row_id,  # every entity's id is `Id`
            page_size=self.page_size,
            max_page_size=protocol.MAX_RESULTS,
        )

    def _reader(self, entity: Entity):
        name = protocol.STREAM_ENTITIES[entity]
        mapper = map_customer if entity == "customers" else self._map_invoice

        def read(row: dict[str, Any], walk: Walk) -> ReadOutcome:
            external_id = str(row["Id"])
            if protocol.is_deleted(row):
                return Tombstone(external_id)
            return mapped(external_id, row, mapper, name, MAPPING_FIX)

        return read

    def _map_invoice(self, record: dict[str, Any]) -> Invoice:
        return map_invoice(record, self.tax_rates())

    def tax_rates(self) -> dict[str, TaxRateInfo]:
        """The company's TaxRates by id (`SELECT * FROM TaxRate`), read once per connector, for
        classifying tax lines. A rate that cannot be read is left out: its tax is `other_tax`."""
        if self._tax_rates is None:
            rates: dict[str, TaxRateInfo] = {}
            for rows in self._windows("TaxRate", None):
                for row in rows:
                    try:
                        info = tax_rate_info(row)
                    except MappingError:
                        continue
                    rates[info.id] = info
            self._tax_rates = rates
        return self._tax_rates


class QuickBooksResource(ConnectorResource):
    """How the hub talks to QuickBooks Online; per-tenant credentials come from the vault."""

    connector_class: ClassVar[type] = QuickBooksConnector
    page_size: int = protocol.MAX_RESULTS
    requests_per_minute: int | None = PACED_REQUESTS_PER_MINUTE
