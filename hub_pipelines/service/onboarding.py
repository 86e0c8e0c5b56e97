"""OAuth onboarding: connect a Zoho Books, QuickBooks Online or Xero company in a browser.

`GET /oauth/{system}/start?tenant=T[&account=ID]` (admin bearer token) answers 302 to the system's
consent page with a signed, expiring `state`; the browser comes back to
`GET /oauth/{system}/callback?code&state` (+ Zoho's `location` / `accounts-server`, Intuit's
`realmId`), which checks the state, exchanges the code, finds the account (Zoho data centre and
organisation, QuickBooks realm, Xero tenant), stores the tokens encrypted in the tenant's config,
tests the connection and answers a plain result page. docs/connecting.md is the operator's guide.

Design choices:
- The hub's app credentials and the callback come from the environment, one set per system
  (`HUB_ZOHO_*`, `HUB_QUICKBOOKS_*`, `HUB_XERO_*`, `HUB_PUBLIC_URL`): one registered app serves
  every tenant, as the systems intend, and nothing secret travels in a URL.
  `HUB_<SYSTEM>_ACCOUNTS_URL` moves the consent page and the token endpoint to another host (a
  simulator: both on one host) and `HUB_<SYSTEM>_API_URL` the API; both end up in the stored
  config, so the connector reaches the same host later.
- Stateless, as the service is: the state carries the tenant, system, optional account hint, a
  nonce and the expiry, signed with HMAC-SHA256 under a key derived from
  CREDENTIAL_ENCRYPTION_KEY, so any replica verifies it. A state can be presented again within
  its 10 minutes; the authorisation code it comes with cannot (the systems accept a code once).
- Re-connecting keeps the tenant's other settings (its sync config, limits) and replaces the
  credentials. The access token of the exchange is saved through the token store (the path a
  refresh uses), so the connection test does not spend a refresh (Zoho caps token requests).
- Zoho's callback names the accounts server to exchange the code at: only Zoho's own servers
  (or the configured override) are trusted, or a forged callback could collect the client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hub_pipelines.connectors.errors import Category, SyncError, classify
from hub_pipelines.connectors.http import HttpClient
from hub_pipelines.connectors.oauth import TokenSet, request_tokens
from hub_pipelines.quickbooks import protocol as quickbooks_protocol
from hub_pipelines.service.security import log, require_admin
from hub_pipelines.tenants.connection_check import check_connection
from hub_pipelines.tenants.models import (
    HUB_MANAGED_FIELDS,
    TenantConfigError,
    plain_connection_config,
)
from hub_pipelines.tenants.registry import TenantRegistry, validate_tenant_slug
from hub_pipelines.tenants.token_store import ConfigTokenStore
from hub_pipelines.vault import Vault, VaultError
from hub_pipelines.xero import protocol as xero_protocol
from hub_pipelines.zoho_books import connector as zoho

STATE_LIFETIME_SECONDS = 600
_STATE_KEY_LABEL = b"hub-pipelines/oauth-state/v1"  # derives the state key from the vault key
PUBLIC_URL_VARIABLE = "HUB_PUBLIC_URL"
ZOHO_SCOPES = "ZohoBooks.contacts.READ,ZohoBooks.invoices.READ,ZohoBooks.settings.READ"
ZOHO_DEFAULT_ACCOUNTS = "https://accounts.zoho.com"  # sends a user of another DC to theirs
# Zoho's `location` values by data centre (Zoho multi-DC page; "us" for .com) (unverified).
ZOHO_LOCATIONS = {"us": "com", "in": "in", "eu": "eu", "au": "com.au", "jp": "jp", "ca": "ca"}
ZOHO_LOCATIONS |= {"sa": "sa", "uk": "uk"}
_CREDENTIALS = ("client_id", "client_secret", "refresh_token")


# --- the systems -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """One system's OAuth endpoints: the real ones, and their paths on an override host."""

    system: str
    label: str
    env_prefix: str
    authorize_url: str
    token_url: str
    authorize_path: str
    token_path: str
    scope: str
    authorize_extras: Mapping[str, str] = field(default_factory=dict)


PROVIDERS = {
    provider.system: provider
    for provider in (
        Provider(
            "zoho_books",
            "Zoho Books",
            "HUB_ZOHO",
            ZOHO_DEFAULT_ACCOUNTS + "/oauth/v2/auth",
            ZOHO_DEFAULT_ACCOUNTS + "/oauth/v2/token",
            "/oauth/v2/auth",
            "/oauth/v2/token",
            ZOHO_SCOPES,
            # offline: a refresh token; consent: asked again, so a new refresh token comes back
            {"access_type": "offline", "prompt": "consent"},
        ),
        Provider(
            "quickbooks",
            "QuickBooks Online",
            "HUB_QUICKBOOKS",
            "https://appcenter.intuit.com/connect/oauth2",
            quickbooks_protocol.TOKEN_URL,
            "/connect/oauth2",
            "/oauth2/v1/tokens/bearer",
            quickbooks_protocol.SCOPE,
        ),
        Provider(
            "xero",
            "Xero",
            "HUB_XERO",
            "https://login.xero.com/identity/connect/authorize",
            xero_protocol.TOKEN_URL,
            "/identity/connect/authorize",
            "/connect/token",
            xero_protocol.SCOPES,
        ),
    )
}


class Unavailable(RuntimeError):
    """The service lacks a setting onboarding needs (503, naming the variable)."""


@dataclass(frozen=True)
class AppSettings:
    """The hub's registered app at one system, read from the environment on each request."""

    provider: Provider
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    accounts_url: str | None  # override of the consent and token host
    api_url: str | None  # override of the API host
    environment: str = "production"  # QuickBooks: which keys (and API host) these are

    @property
    def authorize_url(self) -> str:
        if self.accounts_url:
            return self.accounts_url + self.provider.authorize_path
        return self.provider.authorize_url

    @property
    def token_url(self) -> str:
        if self.accounts_url:
            return self.accounts_url + self.provider.token_path
        return self.provider.token_url

    @property
    def basic_auth(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def app_settings(provider: Provider, environ: Mapping[str, str] | None = None) -> AppSettings:
    environ = os.environ if environ is None else environ

    def read(name: str) -> str:
        return environ.get(name, "").strip()

    prefix = provider.env_prefix
    needed = (f"{prefix}_CLIENT_ID", f"{prefix}_CLIENT_SECRET", PUBLIC_URL_VARIABLE)
    missing = [name for name in needed if not read(name)]
    if missing:
        raise Unavailable(
            f"{provider.label} onboarding is not configured: set {', '.join(missing)} in the "
            "service's environment (docs/connecting.md)."
        )
    environment = read("HUB_QUICKBOOKS_ENVIRONMENT") or "production"
    if provider.system == "quickbooks" and environment not in ("production", "sandbox"):
        raise Unavailable("HUB_QUICKBOOKS_ENVIRONMENT must be production or sandbox.")
    return AppSettings(
        provider,
        client_id=read(f"{prefix}_CLIENT_ID"),
        client_secret=read(f"{prefix}_CLIENT_SECRET"),
        redirect_uri=f"{read(PUBLIC_URL_VARIABLE).rstrip('/')}/oauth/{provider.system}/callback",
        accounts_url=read(f"{prefix}_ACCOUNTS_URL").rstrip("/") or None,
        api_url=read(f"{prefix}_API_URL").rstrip("/") or None,
        environment=environment,
    )


def authorize_redirect(settings: AppSettings, state: str) -> str:
    query = {
        "client_id": settings.client_id,
        "response_type": "code",
        "scope": settings.provider.scope,
        "redirect_uri": settings.redirect_uri,
        "state": state,
        **settings.provider.authorize_extras,
    }
    return f"{settings.authorize_url}?{urlencode(query)}"


# --- the state ---------------------------------------------------------------------------------


class BadState(ValueError):
    """A state that is not ours, was altered, or is too old (400, nothing stored)."""


@dataclass(frozen=True)
class State:
    tenant: str
    system: str
    account: str | None  # the organisation / realm / Xero tenant asked for, if any
    expires_at: int


def _state_key(vault: Vault) -> bytes:
    """A key of its own for states, so a state's MAC never doubles as anything the vault seals."""
    return hmac.new(vault.current, _STATE_KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_state(
    vault: Vault, tenant: str, system: str, account: str | None = None, *, now: float | None = None
) -> str:
    expires_at = int((time.time() if now is None else now) + STATE_LIFETIME_SECONDS)
    claims = {"t": tenant, "s": system, "a": account, "n": secrets.token_urlsafe(12)}
    payload = _b64(json.dumps({**claims, "e": expires_at}, separators=(",", ":")).encode())
    mac = hmac.new(_state_key(vault), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def read_state(vault: Vault, text: str, system: str, *, now: float | None = None) -> State:
    payload, _, mac = text.partition(".")
    expected = _b64(hmac.new(_state_key(vault), payload.encode(), hashlib.sha256).digest())
    if not payload or not hmac.compare_digest(mac.encode(), expected.encode()):
        raise BadState("the state parameter is not one this hub signed, or it was altered")
    claims = json.loads(_unb64(payload))  # signed by us: well-formed
    if claims["e"] <= (time.time() if now is None else now):
        raise BadState("the authorisation took longer than 10 minutes and its state expired")
    if claims["s"] != system:
        raise BadState(f"the state was issued for {claims['s']}, not {system}")
    return State(claims["t"], claims["s"], claims["a"], claims["e"])


# --- exchanging the code and finding the account ------------------------------------------------


@dataclass(frozen=True)
class Connected:
    """What the exchange and the account lookup found: config fields and the tokens."""

    fields: dict[str, Any]
    tokens: TokenSet
    organisation: str | None = None


@dataclass(frozen=True)
class Existing:
    """The tenant's current config for the system (re-connecting), or empty."""

    connection: dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] | None = None


def choose_account(
    provider: Provider, found: list[tuple[str, str]], hint: str | None, current: str | None
) -> tuple[str, str]:
    """(id, name) of the account to connect: the one asked for at the start, else the one the
    tenant had, else the only one the authorisation reaches."""
    by_id = {account_id.lower(): (account_id, name) for account_id, name in found}
    for wanted in (hint, current):
        if wanted and wanted.lower() in by_id:
            return by_id[wanted.lower()]
    if hint:
        raise SyncError(Category.CONFIG, f"{hint} is not among the accounts this grant reaches")
    if len(found) == 1:
        return found[0]
    listed = "; ".join(f"{name} ({account_id})" for account_id, name in found) or "none"
    raise SyncError(
        Category.CONFIG,
        f"this authorisation reaches {len(found)} {provider.label} organisations: {listed}",
        suggested_fix="Start again with &account=ID naming one of them (docs/connecting.md).",
    )


def _zoho_accounts_server(settings: AppSettings, params: Mapping[str, str]) -> str:
    named = params.get("accounts-server", "").strip().rstrip("/")
    trusted = set(zoho.ACCOUNTS_HOSTS.values()) | {settings.accounts_url or ZOHO_DEFAULT_ACCOUNTS}
    if named and named not in trusted:
        raise SyncError(
            Category.CONFIG,
            f"the callback names {named!r} as Zoho's accounts server, which is not one of Zoho's",
            suggested_fix="Start the connection again from the hub (docs/connecting.md).",
        )
    return named or settings.accounts_url or ZOHO_DEFAULT_ACCOUNTS


def _zoho_region(accounts: str, location: str | None, current: str | None) -> str:
    by_host = {host: region for region, host in zoho.ACCOUNTS_HOSTS.items()}
    return by_host.get(accounts) or ZOHO_LOCATIONS.get(location or "") or current or "in"


def connect_zoho(
    settings: AppSettings, params: Mapping[str, str], state: State, existing: Existing
) -> Connected:
    accounts = _zoho_accounts_server(settings, params)
    current = existing.connection
    region = _zoho_region(accounts, params.get("location"), current.get("region"))
    with HttpClient() as http:
        http.redactor.register(settings.client_secret, params.get("code"))
        tokens = request_tokens(
            http,
            f"{accounts}/oauth/v2/token",
            params={
                "grant_type": "authorization_code",
                "code": params.get("code", ""),
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "redirect_uri": settings.redirect_uri,
            },
            check=zoho.token_check,
        )
        http.redactor.register(tokens.access_token, tokens.refresh_token)
        api = settings.api_url or zoho.API_HOSTS[region]
        body = http.get_json(
            f"{api}/books/v3/organizations",
            headers={"Authorization": f"Zoho-oauthtoken {tokens.access_token}"},
        )
    found = [
        (str(org.get("organization_id")), str(org.get("name") or ""))
        for org in body.get("organizations") or []
    ]
    org_id, name = choose_account(
        settings.provider, found, state.account, current.get("organization_id")
    )
    known_host = accounts in zoho.ACCOUNTS_HOSTS.values()
    fields = {
        "region": region,
        "organization_id": org_id,
        "accounts_url": None if known_host else accounts,
        "api_base_url": settings.api_url,
    }
    return Connected(fields, tokens, name)


def exchange_code(
    http: HttpClient,
    settings: AppSettings,
    params: Mapping[str, str],
    check: Any,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The authorization code for tokens at a token endpoint taking HTTP Basic client auth
    (Intuit, Xero); the secret, the Basic header and the code are redacted from every message."""
    http.redactor.register(settings.client_secret, settings.basic_auth, params.get("code"))
    return request_tokens(
        http,
        settings.token_url,
        data={
            "grant_type": "authorization_code",
            "code": params.get("code", ""),
            "redirect_uri": settings.redirect_uri,
        },
        headers={"Authorization": settings.basic_auth, **(headers or {})},
        check=check,
    )


def connect_quickbooks(
    settings: AppSettings, params: Mapping[str, str], state: State, existing: Existing
) -> Connected:
    realm = params.get("realmId", "").strip()
    if not realm or (state.account and state.account != realm):
        raise SyncError(
            Category.CONFIG,
            f"Intuit's callback names realm {realm or '(none)'}"
            + (f", not {state.account} as asked" if state.account else ""),
        )
    with HttpClient() as http:
        tokens = exchange_code(
            http,
            settings,
            params,
            quickbooks_protocol.token_check,
            {"Accept": "application/json", quickbooks_protocol.HARD_EXPIRY_HEADER: "true"},
        )
    seconds = tokens.extra.get(quickbooks_protocol.HARD_EXPIRY_FIELD)
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        tokens = replace(
            tokens, extra={**tokens.extra, "refresh_token_expires_at": expires_at.isoformat()}
        )
    fields = {
        "realm_id": realm,
        "environment": settings.environment,
        "api_base_url": settings.api_url,
        "token_url": settings.token_url if settings.accounts_url else None,
    }
    return Connected(fields, tokens)


def connect_xero(
    settings: AppSettings, params: Mapping[str, str], state: State, existing: Existing
) -> Connected:
    with HttpClient() as http:
        tokens = exchange_code(http, settings, params, xero_protocol.token_check)
        http.redactor.register(tokens.access_token, tokens.refresh_token)
        api = settings.api_url or "https://api.xero.com"
        connections = http.get_json(
            f"{api}/connections", headers={"Authorization": f"Bearer {tokens.access_token}"}
        )
    found = [
        (str(row.get("tenantId")), str(row.get("tenantName") or ""))
        for row in connections
        if isinstance(row, dict) and row.get("tenantType", "ORGANISATION") == "ORGANISATION"
    ]
    tenant_id, name = choose_account(
        settings.provider, found, state.account, existing.connection.get("xero_tenant_id")
    )
    fields = {
        "xero_tenant_id": tenant_id,
        "api_base_url": settings.api_url,
        "token_url": settings.token_url if settings.accounts_url else None,
    }
    return Connected(fields, tokens, name)


Connect = Callable[[AppSettings, Mapping[str, str], State, Existing], Connected]
CONNECTORS: dict[str, Connect] = {
    "zoho_books": connect_zoho,
    "quickbooks": connect_quickbooks,
    "xero": connect_xero,
}


# --- storing and testing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    connected: bool
    organisation: str | None = None
    category: str | None = None
    message: str | None = None
    fix: str | None = None


def existing_config(registry: TenantRegistry, tenant: str, system: str) -> Existing:
    """The tenant's current settings for the system, without the credentials being replaced."""
    try:
        config = registry.get(tenant, system)
    except TenantConfigError:  # not registered yet
        return Existing()
    keep = set(_CREDENTIALS) | set(HUB_MANAGED_FIELDS)
    plain = plain_connection_config(config.connection)
    connection = {name: value for name, value in plain.items() if name not in keep}
    return Existing(connection, config.row.sync_config.model_dump(mode="json"))


def store(
    registry: TenantRegistry,
    settings: AppSettings,
    state: State,
    connected: Connected,
    existing: Existing,
) -> None:
    """Register the config (encrypted), then save the exchange's tokens the way a refresh does."""
    connection = {
        **existing.connection,
        **connected.fields,
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "refresh_token": connected.tokens.refresh_token,
    }
    document = {"connection_config": connection, "sync_config": existing.sync}
    registry.add(state.tenant, state.system, document)
    ConfigTokenStore(registry, registry.get(state.tenant, state.system)).save(connected.tokens)


def onboard(settings: AppSettings, state: State, params: Mapping[str, str]) -> Outcome:
    """Exchange, resolve, store, test: the callback's blocking work (runs in a thread)."""
    registry = TenantRegistry(Vault.from_env())
    try:
        existing = existing_config(registry, state.tenant, state.system)
        connected = CONNECTORS[state.system](settings, params, state, existing)
        if not connected.tokens.refresh_token:
            raise SyncError(
                Category.AUTH,
                f"{settings.provider.label} answered without a refresh token",
                suggested_fix="Check the app's scopes (docs/connecting.md) and start again.",
            )
        store(registry, settings, state, connected, existing)
        result, error = check_connection(registry, state.tenant, state.system)
    except TenantConfigError as exc:
        error, result = SyncError(Category.CONFIG, str(exc)), None
    except Exception as exc:  # classified for the page; the tokens never reach it
        error, result = classify(exc), None
    if error is not None or result is None or not result.success:
        error = error or SyncError(Category.CONFIG, "the connection test failed")
        return Outcome(False, None, str(error.category), error.message, error.suggested_fix)
    return Outcome(True, result.organisation or connected.organisation)


# --- pages and routes ---------------------------------------------------------------------------


def page(status: int, title: str, lines: list[str]) -> HTMLResponse:
    """A plain page; every piece of text is escaped."""
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _provider(request: Request) -> Provider:
    provider = PROVIDERS.get(request.path_params["system"])
    if provider is None:
        raise HTTPException(404, f"onboarding exists for {', '.join(PROVIDERS)} only")
    return provider


def _vault() -> Vault:
    try:
        return Vault.from_env()
    except VaultError as exc:
        raise HTTPException(503, str(exc)) from None


def _settings(provider: Provider) -> AppSettings:
    try:
        return app_settings(provider)
    except Unavailable as exc:
        raise HTTPException(503, str(exc)) from None


async def start(request: Request) -> Response:
    require_admin(request)
    provider = _provider(request)
    tenant = request.query_params.get("tenant", "")
    try:
        validate_tenant_slug(tenant)
    except TenantConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    account = request.query_params.get("account", "").strip() or None
    settings = _settings(provider)
    state = sign_state(_vault(), tenant, provider.system, account)
    log.info("oauth start", extra={"system": provider.system, "tenant": tenant})
    return RedirectResponse(authorize_redirect(settings, state), status_code=302)


async def callback(request: Request) -> Response:
    provider = _provider(request)
    params = dict(request.query_params)
    try:
        state = read_state(_vault(), params.get("state", ""), provider.system)
    except BadState as exc:
        log.warning("oauth state refused", extra={"system": provider.system, "reason": str(exc)})
        return page(400, "Not connected", [f"Refused: {exc}.", "Start the connection again."])
    if params.get("error") or not params.get("code"):
        reason = params.get("error") or "no authorisation code"
        return page(
            400,
            f"{provider.label} not connected",
            [f"{provider.label} answered: {reason}. Nothing was stored.", "Start again."],
        )
    outcome = await run_in_threadpool(onboard, _settings(provider), state, params)
    log.info(
        "oauth callback",
        extra={"system": state.system, "tenant": state.tenant, "connected": outcome.connected},
    )
    if outcome.connected:
        return page(
            200,
            f"{provider.label} connected",
            [f"Tenant {state.tenant} is connected to {outcome.organisation or 'its account'}."],
        )
    return page(
        502,
        f"{provider.label} not connected",
        [f"Tenant {state.tenant}: failed: {outcome.category}: {outcome.message}", outcome.fix],
    )


def routes() -> list[Route]:
    return [
        Route("/oauth/{system}/start", start, methods=["GET"]),
        Route("/oauth/{system}/callback", callback, methods=["GET"]),
    ]
