"""The operations view: every table's lag against its SLA and the alerts firing now, as
Markdown for the ``operations/status`` asset in the Dagster UI (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from billing_sync.alerts.conditions import Freshness


def _when(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(
    tables: Iterable[Freshness] | None,
    firing: Mapping[str, Mapping[str, Any]],
    *,
    at: float,
    webhook: bool,
    unavailable: str | None = None,
) -> str:
    """The page: tables slowest first, breaches marked; then the firing alerts, oldest
    first.

    >>> print(markdown([Freshness("payment", "priority", 12.5, 10, "icoms.PAYMENT")], {},
    ...                at=0, webhook=False).splitlines()[4])
    | icoms.PAYMENT | payment | priority | 12.5 s | 10 s | **BREACH** |
    """
    lines = [f"**As of {_when(at)}**", ""]
    if tables is None:
        lines += [f"Lag unavailable: {_cell(unavailable or 'the databases cannot be read')}", ""]
    else:
        rows = sorted(
            tables,
            key=lambda f: (f.lag_seconds is not None, -(f.lag_seconds or 0.0) / f.sla_seconds),
        )
        lines += ["| table | entity | tier | lag | SLA | state |", "|---|---|---|---|---|---|"]
        for f in rows:
            lag = "not loaded" if f.lag_seconds is None else f"{f.lag_seconds:.1f} s"
            state = "ok" if f.fresh else "**BREACH**"
            lines.append(
                f"| {f.table} | {f.entity} | {f.tier} | {lag} | {f.sla_seconds:g} s | {state} |"
            )
        lines.append("")
    alerts = sorted(firing.items(), key=lambda item: float(item[1].get("since") or 0.0))
    lines.append(f"**Active alerts: {len(alerts)}**" + ("" if webhook else " (no webhook set)"))
    lines.append("")
    if alerts:
        lines += ["| since | severity | kind | subject | summary |", "|---|---|---|---|---|"]
        for _, sent in alerts:
            lines.append(
                f"| {_when(sent.get('since'))} | {sent.get('severity', '')} "
                f"| {sent.get('kind', '')} | {_cell(str(sent.get('subject', '')))} "
                f"| {_cell(str(sent.get('summary', ''))[:300])} |"
            )
    else:
        lines.append("None.")
    return "\n".join(lines)
