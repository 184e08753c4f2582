"""Email channel: Microsoft Graph sendMail, with an app-only token from msal (client credentials).

The msal application (and so its token cache) lives once per process per tenant, client and
HTTP session: a token is reused until msal renews it. The authority is configurable
(GRAPH_AUTHORITY_URL) for national clouds and for tests, which serve a local TLS token endpoint.
The client secret and the token never appear in logs or errors.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msal
import requests

from license_monitor.notify import DeliveryError, Notification, host_of
from license_monitor.notify.http import DEFAULT_TIMEOUT, post_json, timeout_within_deadline
from license_monitor.notify.message import AlertMessage, compose

logger = logging.getLogger(__name__)

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
# Token errors that another attempt with the same settings cannot fix.
_PERMANENT_TOKEN_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_request", "invalid_scope"})
_AADSTS = re.compile(r"\bAADSTS\d+\b")

_apps: dict[tuple[str, str, str, int], msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


class _TimedSession:
    """The HTTP client msal uses: our session, with a timeout on every request.

    msal applies its own `timeout` only to sessions it builds itself; ours must carry one
    because every outbound request has a timeout (DESIGN.md §12).
    """

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        self._session = session
        self._timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET with the default timeout (cut to the check's time left)."""
        kwargs.setdefault("timeout", timeout_within_deadline(self._timeout))
        return self._session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """POST with the default timeout (cut to the check's time left)."""
        kwargs.setdefault("timeout", timeout_within_deadline(self._timeout))
        return self._session.post(url, **kwargs)

    def close(self) -> None:
        """The session belongs to the caller: leave it open."""


def _authority(target: Mapping[str, Any]) -> str:
    base = str(target.get("authority_url") or DEFAULT_AUTHORITY_URL).rstrip("/")
    return f"{base}/{target['tenant_id']}"


def _app_key(target: Mapping[str, Any], session: requests.Session) -> tuple[str, str, str, int]:
    # The secret is part of the key (hashed) so a rotated secret gets a fresh application.
    secret_hash = hashlib.sha256(str(target["client_secret"]).encode("utf-8")).hexdigest()
    return _authority(target), str(target["client_id"]), secret_hash, id(session)


def graph_app(
    target: Mapping[str, Any], session: requests.Session
) -> msal.ConfidentialClientApplication:
    """This process's msal application for the target's tenant and client (built once)."""
    key = _app_key(target, session)
    with _apps_lock:
        app = _apps.get(key)
        if app is not None:
            return app
        authority = key[0]
        try:
            # instance_discovery=False: msal would otherwise ask login.microsoftonline.com
            # about an authority it does not know (a national cloud mirror, a test server).
            app = msal.ConfidentialClientApplication(
                key[1], client_credential=str(target["client_secret"]), authority=authority,
                instance_discovery=False, http_client=_TimedSession(session, DEFAULT_TIMEOUT),
            )
        except Exception as err:
            # `from None`: msal's messages quote discovery URLs and response bodies.
            raise DeliveryError(
                f"the Entra ID authority at {host_of(authority)} could not be used "
                f"({type(err).__name__}); check GRAPH_AUTHORITY_URL and GRAPH_TENANT_ID",
                retryable=True,
            ) from None
        _apps[key] = app
        return app


def forget_app(target: Mapping[str, Any], session: requests.Session) -> None:
    """Drop the cached application (and its token): the next send asks for a new token."""
    with _apps_lock:
        _apps.pop(_app_key(target, session), None)


def graph_token(target: Mapping[str, Any], session: requests.Session) -> str:
    """An app-only Microsoft Graph token, from msal's cache or the tenant's token endpoint."""
    app = graph_app(target, session)
    host = host_of(_authority(target))
    try:
        result = app.acquire_token_for_client(GRAPH_SCOPES)
    except Exception as err:
        raise DeliveryError(
            f"the Entra ID token endpoint at {host} could not be reached ({type(err).__name__})",
            retryable=True,
        ) from None
    token = result.get("access_token") if isinstance(result, dict) else None
    if token:
        return str(token)
    error = str(result.get("error") or "no access token") if isinstance(result, dict) else (
        "no answer")
    described = _AADSTS.search(str(result.get("error_description", ""))) if isinstance(
        result, dict) else None
    code = f", {described.group(0)}" if described else ""
    raise DeliveryError(
        f"Entra ID at {host} refused a Microsoft Graph token ({error}{code}); check "
        "GRAPH_CLIENT_ID, GRAPH_CLIENT_SECRET and the Mail.Send application permission",
        retryable=error not in _PERMANENT_TOKEN_ERRORS,
    )


def mail_body(message: AlertMessage, recipients: list[str], alert_id: str) -> dict[str, Any]:
    """The sendMail request body: an HTML message, not saved to Sent Items."""
    rows = "".join(
        f"<tr><th align=\"left\">{html.escape(title)}</th><td>{html.escape(value)}</td></tr>"
        for title, value in message.facts)
    link = ""
    if message.link:
        link = f"<p><a href=\"{html.escape(message.link)}\">Run the manual check</a></p>"
    content = (
        f"<p><strong>{html.escape(message.subject)}</strong></p>"
        f"<p>{html.escape(message.line)}</p><table>{rows}</table>{link}"
        f"<p style=\"color:#666\">alert {html.escape(alert_id)}</p>"
    )
    return {
        "message": {
            "subject": message.subject,
            "body": {"contentType": "HTML", "content": content},
            "toRecipients": [{"emailAddress": {"address": address}} for address in recipients],
        },
        "saveToSentItems": False,
    }


def deliver(
    target: Mapping[str, Any],
    notification: Notification,
    *,
    session: requests.Session,
    now: datetime,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Channel entry point: target {"to", "from", "tenant_id", "client_id", "client_secret",
    "authority_url", "api_url", "org_name", "link"}."""
    missing = [name for name in ("to", "from", "tenant_id", "client_id", "client_secret")
               if not target.get(name)]
    if missing:
        raise ValueError("the email channel is missing " + ", ".join(missing)
                         + " (ALERT_EMAIL_TO, ALERT_EMAIL_FROM, GRAPH_TENANT_ID, GRAPH_CLIENT_ID, "
                         "GRAPH_CLIENT_SECRET)")
    message = compose(notification.payload, org_name=target.get("org_name"),
                      link=target.get("link"))
    body = mail_body(message, list(target["to"]),
                     str(notification.payload.get("alert_id", "")))
    api = str(target.get("api_url") or DEFAULT_GRAPH_URL).rstrip("/")
    url = f"{api}/users/{quote(str(target['from']), safe='@')}/sendMail"
    for attempt in (1, 2):
        token = graph_token(target, session)
        try:
            post_json(url, body, session=session, what="Microsoft Graph sendMail",
                      notification_id=notification.id, sleep=sleep,
                      headers={"Authorization": f"Bearer {token}"})
        except DeliveryError as err:
            if err.status == 401 and attempt == 1:
                # A revoked or expired token msal still trusts: drop it and ask again once.
                logger.warning("%s: Microsoft Graph rejected the token; renewing it",
                               notification.id)
                forget_app(target, session)
                continue
            raise
        return
