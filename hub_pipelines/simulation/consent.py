"""The browser half of a simulator's authorisation server: a consent page with an "Allow" button.

`GET <authorize path>?client_id&redirect_uri&scope&state&response_type=code` shows the page; its
form POSTs back to the same path, and "Allow" redirects (302) to `redirect_uri` with `code` and
`state` plus what the system adds (Intuit: `realmId`; Zoho: `location`, `accounts-server`), as
the real authorisation servers do. "Deny" redirects with `error=access_denied`. The code comes
from the simulator's `OAuthServer.authorize`, so the token endpoint exchanges it once.

No sign-in: the simulator's user is whoever opens the page.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from hub_pipelines.simulation.engine import SimulatorEngine

# What a system binds the grant to (the realm, the organisations) and adds to the redirect.
GrantContext = Callable[[], dict[str, Any]]
RedirectExtras = Callable[[Request], dict[str, str]]

_FIELDS = ("client_id", "redirect_uri", "scope", "state")


def consent_route(
    simulator: SimulatorEngine,
    path: str,
    *,
    title: str,
    context: GrantContext = dict,
    extras: RedirectExtras = lambda _request: {},
) -> Route:
    async def endpoint(request: Request) -> Response:
        params = await simulator.request_params(request)
        problem = _problem(simulator, params)
        if problem:
            return PlainTextResponse(problem, status_code=400)
        if request.method == "GET":
            return HTMLResponse(_page(title, path, params))
        answer = {"state": params.get("state", "")}
        if params.get("decision") == "allow":
            with simulator.lock:
                code = simulator.oauth.authorize(
                    params["client_id"],
                    params["redirect_uri"],
                    params.get("scope", ""),
                    params.get("state", ""),
                    context=context(),
                )
            answer = {"code": code, **answer, **extras(request)}
        else:
            answer = {"error": "access_denied", **answer}
        separator = "&" if "?" in params["redirect_uri"] else "?"
        return RedirectResponse(
            params["redirect_uri"] + separator + urlencode(answer), status_code=302
        )

    return Route(path, endpoint, methods=["GET", "POST"])


def _problem(simulator: SimulatorEngine, params: dict[str, str]) -> str:
    """Why the request cannot be shown a consent page ("" when it can). Like the real servers,
    a bad client or redirect is answered here, never redirected."""
    if params.get("client_id", "") not in simulator.oauth.clients:
        return "unknown client_id"
    if not params.get("redirect_uri", "").startswith(("http://", "https://")):
        return "redirect_uri must be an http(s) URL"
    if params.get("response_type", "code") != "code":
        return "response_type must be code"
    return ""


def _page(title: str, path: str, params: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
        for name in _FIELDS
    )
    scope = html.escape(params.get("scope", ""))
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}: allow access</title></head>"
        f"<body><h1>{html.escape(title)}</h1>"
        f"<p>An application asks for access with the scopes <code>{scope}</code>.</p>"
        f'<form method="post" action="{html.escape(path)}">{hidden}'
        '<button type="submit" name="decision" value="allow">Allow</button> '
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form></body></html>"
    )
