"""Notifiers: the body each one sends for an alert, and sending it (stdlib only).

Four kinds (docs/observability.md shows a real body of each):

- `webhook`: a JSON POST of the alert itself (`"schema": "lockgate.alert/1"`);
- `slack`: a Slack-compatible incoming-webhook message (`text` and `blocks`);
- `pagerduty`: a PagerDuty Events API v2 `trigger` event, `dedup_key` the
  delivery's key, so PagerDuty folds repeated sends into one incident;
- `command`: an argv run with the webhook JSON on stdin; exit 0 is success.

A send either succeeds or returns why it failed; it never raises for a
delivery problem. Error texts have every secret of the rule replaced by
`<redacted>` before anyone stores or prints them.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.errors import ConfigError
from lockgate.ports.alerts import AlertDelivery
from lockgate.service.alertrules import PAGERDUTY_URL, AlertRule

SCHEMA = "lockgate.alert/1"
USER_AGENT = "lockgate-alerts/1"
#: The most of a receiver's answer or a command's stderr kept in an error.
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one send achieved."""

    ok: bool
    error: str | None = None


def iso(at: float) -> str:
    """UTC ISO 8601 with seconds, as every body shows times."""
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")


def alert_body(delivery: AlertDelivery) -> dict[str, Any]:
    """The generic alert document (the `webhook` body and the `command` stdin)."""
    payload = delivery.payload
    return {
        "schema": SCHEMA,
        "rule": delivery.rule,
        "event": delivery.event,
        "summary": payload.get("summary"),
        "severity": payload.get("severity"),
        "pipeline": delivery.pipeline,
        "run_id": delivery.run_id,
        "at": iso(float(payload.get("at", delivery.created_at))),
        "details": dict(payload.get("details", {})),
        "dedup_key": delivery.key,
        "attempt": delivery.attempts + 1,
    }


def slack_body(delivery: AlertDelivery) -> dict[str, Any]:
    """A Slack incoming-webhook message: a fallback `text` plus Block Kit `blocks`."""
    summary = str(delivery.payload.get("summary", delivery.event))
    where = [f"rule `{delivery.rule}`"]
    if delivery.pipeline:
        where.append(f"pipeline `{delivery.pipeline}`")
    if delivery.run_id:
        where.append(f"run `{delivery.run_id}`")
    title = f"lockgate: {delivery.event.replace('_', ' ')}"
    return {
        "text": f"{title}: {summary}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(where)}]},
        ],
    }


def pagerduty_body(delivery: AlertDelivery, routing_key: str, severity: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 trigger event."""
    payload = delivery.payload
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": delivery.key,
        "payload": {
            "summary": str(payload.get("summary", delivery.event))[:1024],
            "source": f"lockgate/{delivery.pipeline or 'registry'}",
            "severity": severity,
            "timestamp": iso(float(payload.get("at", delivery.created_at))),
            "component": delivery.pipeline or "registry",
            "group": "lockgate",
            "class": delivery.event,
            "custom_details": {
                "rule": delivery.rule,
                "run_id": delivery.run_id,
                **dict(payload.get("details", {})),
            },
        },
    }


def send(
    rule: AlertRule, delivery: AlertDelivery, env: Mapping[str, str] | None = None
) -> SendResult:
    """Send one delivery with the rule's notifier; never raises for a failed send."""
    secrets: list[str] = []
    try:
        if rule.notifier == "command":
            return _run_command(rule, delivery)
        url = rule.url.reveal(env) if rule.url is not None else PAGERDUTY_URL
        secrets.append(url)
        if rule.notifier == "webhook":
            body = alert_body(delivery)
        elif rule.notifier == "slack":
            body = slack_body(delivery)
        else:
            assert rule.routing_key is not None  # checked when the config was parsed
            key = rule.routing_key.reveal(env)
            secrets.append(key)
            body = pagerduty_body(delivery, key, rule.severity)
        result = _post(url, body, rule.timeout)
        if result.error is not None:  # a receiver may echo what it was sent
            return SendResult(False, _redact(result.error, secrets))
        return result
    except ConfigError as exc:
        return SendResult(False, _redact(str(exc), secrets))
    except Exception as exc:  # a bad URL, a socket error: a failed send, not a crash
        return SendResult(False, _redact(f"{type(exc).__name__}: {exc}", secrets))


def _post(url: str, body: Mapping[str, Any], timeout: float) -> SendResult:
    import urllib.error  # here: urllib.request pulls in http, email and ssl
    import urllib.request

    if not url.startswith(("http://", "https://")):
        return SendResult(False, "the notifier URL must start with http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        answer = exc.read(MAX_DETAIL).decode("utf-8", "replace").strip()
        return SendResult(False, f"HTTP {exc.code}" + (f": {answer}" if answer else ""))
    except urllib.error.URLError as exc:
        return SendResult(False, f"could not connect: {exc.reason}")
    except TimeoutError:
        return SendResult(False, f"no answer within {timeout:g} s")
    if 200 <= status < 300:
        return SendResult(True)
    return SendResult(False, f"HTTP {status}")


def _run_command(rule: AlertRule, delivery: AlertDelivery) -> SendResult:
    data = json.dumps(alert_body(delivery), default=str).encode()
    try:
        # argv comes from the project's own config, never from a request.
        done = subprocess.run(
            list(rule.command),
            input=data,
            capture_output=True,
            timeout=rule.timeout,
            check=False,
        )
    except FileNotFoundError:
        return SendResult(False, f"command not found: {rule.command[0]}")
    except subprocess.TimeoutExpired:
        return SendResult(False, f"command did not finish within {rule.timeout:g} s")
    if done.returncode == 0:
        return SendResult(True)
    stderr = done.stderr.decode("utf-8", "replace").strip()[-MAX_DETAIL:]
    return SendResult(
        False, f"command exited {done.returncode}" + (f": {stderr}" if stderr else "")
    )


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text
