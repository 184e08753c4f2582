"""Generic webhook channel against a real local receiver: signing, retries, secret-free errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import requests

from license_monitor.notify import DeliveryError, Notification, send
from license_monitor.notify.webhook import send_webhook
from tests.fixtures.receivers import HttpReceiver, Received

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PAYLOAD = {
    "event": "breach", "level": "warning", "previous_level": "ok", "concurrent": 461,
    "capacity": 500, "utilization_percent": 92.2, "agents": 420, "admins": 41,
    "alert_id": "breach-20261126T120000Z",
    "message": "461 of 500 concurrent licenses in use (92.2%), warning threshold 90%",
}
WEBHOOK_ID = "breach-20261126T120000Z:breach:webhook"
RAW_SECRET = "plain-shared-secret"
KEY_BYTES = b"sixteen byte key-and-some-more!!"
PREFIXED_SECRET = "whsec_" + base64.b64encode(KEY_BYTES).decode()

Receiver = Callable[..., HttpReceiver]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # a proxy from the environment must not catch 127.0.0.1
        yield http


class Sleeps(list[float]):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def expected_signature(key: bytes, received: Received) -> str:
    """Standard Webhooks signature computed here, independently of the code under test."""
    webhook_id = received.headers["webhook-id"].encode()
    timestamp = received.headers["webhook-timestamp"].encode()
    message = webhook_id + b"." + timestamp + b"." + received.raw
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def post(url: str, session: requests.Session, *, secret: str | None = None,
         sleep: Callable[[float], None] | None = None, attempts: int = 3) -> None:
    send_webhook(url, PAYLOAD, secret=secret, session=session, webhook_id=WEBHOOK_ID, now=NOW,
                 sleep=Sleeps() if sleep is None else sleep, attempts=attempts)


@pytest.mark.parametrize(
    ("secret", "key"),
    [pytest.param(RAW_SECRET, RAW_SECRET.encode(), id="raw secret"),
     pytest.param(PREFIXED_SECRET, KEY_BYTES, id="whsec_ base64 secret")],
)
def test_signed_delivery_verifies_with_an_independent_hmac(
    webhook_receiver: Receiver, session: requests.Session, secret: str, key: bytes
) -> None:
    receiver = webhook_receiver()

    post(receiver.url, session, secret=secret)

    [received] = receiver.received
    assert received.path == receiver.path
    assert received.body == PAYLOAD
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == WEBHOOK_ID
    assert received.headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert received.headers["webhook-signature"] == expected_signature(key, received)


def test_signature_fails_to_verify_with_another_key(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()

    post(receiver.url, session, secret=RAW_SECRET)

    [received] = receiver.received
    assert received.headers["webhook-signature"] != expected_signature(b"other key", received)


def test_unsigned_delivery_has_no_signature_headers(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()

    post(receiver.url, session)

    [received] = receiver.received
    assert received.body == PAYLOAD
    assert "webhook-signature" not in received.headers


def test_server_errors_are_retried_with_the_same_webhook_id(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.fail_next(2, status=502)
    sleeps = Sleeps()

    post(receiver.url, session, secret=RAW_SECRET, sleep=sleeps)

    assert [item.status for item in receiver.received] == [502, 502, 200]
    assert {item.headers["webhook-id"] for item in receiver.received} == {WEBHOOK_ID}
    assert len(receiver.delivered) == 1
    assert sleeps == [1.0, 2.0]


def test_throttling_waits_for_retry_after(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.fail_next(1, status=429)
    sleeps = Sleeps()

    post(receiver.url, session, sleep=sleeps)

    assert len(receiver.delivered) == 1
    assert sleeps == [1.0]  # the receiver sends no Retry-After: first backoff step


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_client_errors_fail_at_once_naming_only_the_host(
    webhook_receiver: Receiver, session: requests.Session, status: int
) -> None:
    receiver = webhook_receiver()
    receiver.fail_next(1, status=status)

    with pytest.raises(DeliveryError) as caught:
        post(receiver.url, session)

    assert len(receiver.received) == 1
    # The receiver's error code is shown: it is a bare code, not free text.
    assert str(caught.value) == f"the webhook at 127.0.0.1 answered HTTP {status} (simulated)"
    assert (caught.value.status, caught.value.retryable) == (status, False)


def test_receiver_that_stays_down_fails_after_the_attempts(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.set_down(True)
    sleeps = Sleeps()

    with pytest.raises(DeliveryError) as caught:
        post(receiver.url, session, sleep=sleeps)

    assert [item.status for item in receiver.received] == [503, 503, 503]
    assert "HTTP 503 (simulated), after 3 attempts" in str(caught.value)
    assert caught.value.retryable
    assert len(sleeps) == 2


def test_unreachable_receiver_error_never_shows_the_path(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.set_down(True, refuse_connections=True)

    with pytest.raises(DeliveryError) as caught:
        post(receiver.url, session, secret=RAW_SECRET)

    message = str(caught.value)
    assert message.startswith("the webhook at 127.0.0.1 could not be reached")
    assert "s3cr3t" not in message
    assert "hooks" not in message
    assert RAW_SECRET not in message
    # No chained requests error either: its text quotes the whole URL.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_receiver_back_up_gets_the_next_delivery(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    receiver.set_down(True, refuse_connections=True)
    with pytest.raises(DeliveryError):
        post(receiver.url, session, attempts=1)

    receiver.set_down(False)
    post(receiver.url, session)

    assert [item.body for item in receiver.delivered] == [PAYLOAD]


def test_bad_whsec_secret_is_refused_without_echoing_it(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()

    with pytest.raises(ValueError, match="not valid base64") as caught:
        post(receiver.url, session, secret="whsec_***not-base64***")

    assert "not-base64" not in str(caught.value)
    assert receiver.received == []


def test_dispatch_by_channel_name_adds_the_summary_line_org_and_link(
    webhook_receiver: Receiver, session: requests.Session
) -> None:
    receiver = webhook_receiver()
    notification = Notification(id=WEBHOOK_ID, channel="webhook", payload=PAYLOAD)

    send("webhook", {"url": receiver.url, "secret": RAW_SECRET, "org_name": "Contoso",
                     "link": "https://monitor.example/api/license-check"}, notification,
         session=session, now=NOW, sleep=Sleeps())

    [received] = receiver.received
    assert json.loads(received.raw) == {
        **PAYLOAD,
        "org": "Contoso",
        "link": "https://monitor.example/api/license-check",
        "summary": "Contoso: License breach (WARNING): 461 of 500 concurrent licenses in use "
                   "(92.2%), warning threshold 90%; 420 agents, 41 admins. "
                   "Manual check: https://monitor.example/api/license-check",
    }
    assert received.headers["webhook-id"] == WEBHOOK_ID
    assert received.headers["webhook-signature"] == expected_signature(
        RAW_SECRET.encode(), received
    )


def test_unknown_channel_is_refused(session: requests.Session) -> None:
    notification = Notification(id="x", channel="fax", payload=PAYLOAD)

    with pytest.raises(ValueError, match="no alert channel called 'fax'"):
        send("fax", {}, notification, session=session, now=NOW)
