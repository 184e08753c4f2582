"""What every channel says about an alert: a title, one line for a phone, facts and a link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from license_monitor.alerting import CAUSES
from license_monitor.notify import CHANNEL_TITLES
from license_monitor.times import clock_time, parse_time

TITLES = {
    "breach": "License breach",
    "escalation": "License breach escalated",
    "resolved": "License breach resolved",
    "reminder": "License breach continues",
    "monitor_failing": "License monitor failing",
    "monitor_recovered": "License monitor recovered",
    "overage_locked_in": "Overage locked in",
    "channel_rejected": "Alert channel rejects messages",
    "forecast_breach": "Breach forecast for today",
}
# Tone drives colours (Teams) and the email subject tag.
_TONES = {
    "resolved": "good",
    "monitor_recovered": "good",
    "monitor_failing": "bad",
    "overage_locked_in": "warning",
    "channel_rejected": "warning",
    "forecast_breach": "warning",
}


@dataclass(frozen=True)
class AlertMessage:
    """One alert as people read it, built from a notification payload."""

    event: str
    title: str  # "Contoso: License breach (CRITICAL)"
    line: str  # the whole story in one line: what happened when, figures, billable peak, link
    facts: tuple[tuple[str, str], ...]
    tone: str  # bad | warning | good
    link: str | None
    subject: str  # the title and the headline figure, for an email subject or a card heading


def _level_tag(payload: dict[str, Any]) -> str:
    level = str(payload.get("level") or "")
    return f" ({level.upper()})" if level in ("warning", "critical") else ""


def _at(payload: dict[str, Any]) -> str:
    """' at 09:40 UTC': the time the alert describes (it may be read much later). UTC, as in
    the payload, the logs and the portal, whatever zone its readers are in."""
    try:
        return f" at {clock_time(parse_time(str(payload['occurred_at'])))}"
    except (KeyError, ValueError):
        return ""


def _number(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _percent(value: Any) -> str:
    return "unknown" if value is None else f"{float(value):.1f}"


def compose(
    payload: dict[str, Any], *, org_name: str | None = None, link: str | None = None
) -> AlertMessage:
    """Build the message of a notification payload (AlertEvent.to_payload())."""
    event = str(payload.get("event", "alert"))
    title = TITLES.get(event, event.replace("_", " ").capitalize())
    if event in ("breach", "escalation", "reminder"):
        title += _level_tag(payload)
    if org_name:
        title = f"{org_name}: {title}"
    concurrent, capacity = payload.get("concurrent"), payload.get("capacity")
    billing = payload.get("billing") or {}
    billable_peak = billing.get("billable_peak", payload.get("billable_peak"))
    upper = billing.get("billable_peak_upper")
    # The exact figure decides; the whole-minute one is named when it reads higher.
    upper_note = (f" (up to {upper} by whole minutes)"
                  if upper is not None and billable_peak is not None and upper != billable_peak
                  else "")

    parts = [f"{title}{_at(payload)}: {payload.get('message', '')}"]
    if concurrent is not None:
        if event == "overage_locked_in":
            parts.append(f"now {concurrent} of {capacity} in use "
                         f"({_percent(payload.get('utilization_percent'))}%)")
        if payload.get("agents") is not None and payload.get("admins") is not None:
            parts.append(f"{payload['agents']} agents, {payload['admins']} admins")
    if billable_peak is not None and event != "overage_locked_in":
        parts.append(f"billable peak so far {billable_peak}{upper_note}")
    line = "; ".join(parts)
    if link:
        line += f". Manual check: {link}"

    facts: list[tuple[str, str]] = []
    if concurrent is not None:
        facts.append(("In use (window peak)", f"{concurrent} of {capacity} "
                                              f"({_percent(payload.get('utilization_percent'))}%)"))
        if payload.get("agents") is not None and payload.get("admins") is not None:
            facts.append(("Agents / admins", f"{payload['agents']} / {payload['admins']}"))
        if payload.get("window_distinct") is not None:
            facts.append(("Logged in during the window", str(payload["window_distinct"])))
    else:
        facts.append(("Capacity", _number(capacity)))
    if billable_peak is not None:
        period = billing.get("period_start")
        facts.append(("Billable peak so far",
                      f"{billable_peak}{upper_note}"
                      + (f" (period from {period})" if period else "")))
    if billing.get("seconds_over_capacity") is not None:
        seconds = int(billing["seconds_over_capacity"])
        facts.append(("Time over capacity", f"{seconds // 60} min {seconds % 60} s"))
    elif billing.get("minutes_over_capacity") is not None:
        facts.append(("Minutes over capacity", str(billing["minutes_over_capacity"])))
    if payload.get("cause"):
        facts.append(("Cause", CAUSES.get(str(payload["cause"]), str(payload["cause"]))))
    facts.append(("Level", str(payload.get("level", "unknown"))))
    facts.append(("At", str(payload.get("occurred_at", ""))))
    facts.append(("Alert id", str(payload.get("alert_id", ""))))

    tone = _TONES.get(event, "bad" if payload.get("level") == "critical" else "warning")
    return AlertMessage(event=event, title=title, line=line, facts=tuple(facts), tone=tone,
                        link=link or None, subject=f"{title}: {_headline(payload)}")


def _headline(payload: dict[str, Any]) -> str:
    """The one figure that matters most for this event."""
    event = payload.get("event")
    capacity = payload.get("capacity")
    billing = payload.get("billing") or {}
    if event == "overage_locked_in" and billing.get("billable_peak") is not None:
        peak = int(billing["billable_peak"])
        return f"billable peak {peak}, {peak - int(capacity or 0)} over the {capacity} purchased"
    forecast = payload.get("forecast")
    if event == "forecast_breach" and isinstance(forecast, dict):
        return f"about {forecast.get('peak')} of {capacity} expected"
    if event == "channel_rejected":
        channel = str(payload.get("channel"))
        return CHANNEL_TITLES.get(channel, channel)
    if payload.get("concurrent") is not None:
        return (f"{payload['concurrent']} of {capacity} concurrent licenses in use "
                f"({_percent(payload.get('utilization_percent'))}%)")
    cause = payload.get("cause")
    return CAUSES.get(str(cause), "check failed") if cause else "check failed"
