"""The webhook's JSON body: plain, or Slack-compatible (``text`` plus blocks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from billing_sync.alerts.conditions import ACTIONS, Condition

Status = Literal["firing", "resolved"]


def body(
    *,
    status: Status,
    kind: str,
    subject: str,
    summary: str,
    severity: str,
    at: float,
    details: dict[str, Any] | None = None,
    since: float | None = None,
    fmt: str = "json",
    source: str = "billing-sync",
    key: str | None = None,
) -> dict[str, Any]:
    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    action = ACTIONS.get(kind, "")
    if fmt == "slack":
        icon = (
            ":white_check_mark:"
            if status == "resolved"
            else (":rotating_light:" if severity == "critical" else ":warning:")
        )
        head = f"{icon} [{source}] {'RESOLVED' if status == 'resolved' else severity.upper()}: "
        text = head + summary
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        ]
        if status == "firing" and action:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"What to do: {action}"}],
                }
            )
        return {"text": text, "blocks": blocks}
    return {
        "source": source,
        "status": status,
        "kind": kind,
        "subject": subject,
        "key": key or f"{kind}:{subject}",
        "severity": severity,
        "summary": summary,
        "action": action,
        "at": when,
        "since": None
        if since is None
        else datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "details": details or {},
    }


def firing(condition: Condition, *, at: float, fmt: str = "json") -> dict[str, Any]:
    return body(
        status="firing",
        kind=condition.kind,
        subject=condition.subject,
        summary=condition.summary,
        severity=condition.severity,
        details=dict(condition.details),
        at=at,
        since=at,
        fmt=fmt,
        key=condition.key,
    )


def resolved(key: str, sent: dict[str, Any], *, at: float, fmt: str = "json") -> dict[str, Any]:
    kind = str(sent.get("kind", key.split(":", 1)[0]))
    return body(
        status="resolved",
        kind=kind,
        subject=str(sent.get("subject", key.split(":", 1)[-1])),
        summary=f"resolved: {sent.get('summary', key)}",
        severity=str(sent.get("severity", "warning")),
        since=sent.get("since"),
        at=at,
        fmt=fmt,
        key=key,
    )
