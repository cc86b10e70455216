"""The ``snapshot`` report's notes: per source, each peer's fastest configuration and
billing-sync against them and the floors, and billing-sync's time by stage."""

from __future__ import annotations

from typing import Any

from billing_sync.bench.report import Report, Row


def summarize(report: Report, rows: int) -> None:
    """Notes per source: each peer's fastest configuration, and billing-sync against them
    and the floors. The first source's summary keys are unprefixed, the next ones'
    prefixed with their engine (``mariadb_speedup_vs_dlt``)."""
    sources = list(dict.fromkeys(row.get("source", "") for row in report.rows))
    summary: dict[str, Any] = {}
    for index, source in enumerate(sources):
        _summarize_source(
            report, [row for row in report.rows if row.get("source", "") == source], summary,
            key="" if index == 0 else f"{source.lower()}_",
            label=f"{source}: " if len(sources) > 1 else "",
        )  # fmt: skip
    report.details["summary"] = summary
    report.details["rows"] = rows


_FLOORS = (  # contender, target, summary key, name in the note, what billing-sync does more
    ("floor: COPY binary", "PostgreSQL", "copy", "PostgreSQL COPY", "writes DuckDB too"),
    ("floor: ConnectorX -> Arrow", "DuckDB", "connectorx", "ConnectorX -> DuckDB",
     "writes PostgreSQL too"),
)  # fmt: skip


def _summarize_source(report: Report, source_rows: list[Row], summary: dict[str, Any], *,
                      key: str, label: str) -> None:  # fmt: skip
    done = [row for row in source_rows if row.get("seconds") and row.get("status") == "ok"]

    def fastest(contender: str, target: str) -> Row | None:
        found = [r for r in done if r["contender"] == contender and r["target"] == target]
        return min(found, key=lambda r: r["seconds"]) if found else None

    ours = next((r for r in done if r["contender"] == "billing-sync"), None)
    for peer in ("dlt", "Sling"):
        best = {t: fastest(peer, t) for t in ("PostgreSQL", "DuckDB")}
        for target, row in best.items():
            if row is not None:
                report.notes.append(
                    f"{label}{peer}'s fastest configuration to {target} here: "
                    f"{row['configuration']} ({row['seconds']:.2f} s)."
                )
                summary[f"{key}{peer}_{target}_fastest"] = row["configuration"]
        if ours and best["PostgreSQL"] and best["DuckDB"]:
            both = best["PostgreSQL"]["seconds"] + best["DuckDB"]["seconds"]
            ratio = both / ours["seconds"]
            summary[f"{key}speedup_vs_{peer}"] = round(ratio, 2)
            report.notes.append(
                f"{label}billing-sync writes both targets in one pass: {ours['seconds']:.2f} s "
                f"against {both:.2f} s for {peer}'s fastest PostgreSQL plus DuckDB runs: "
                f"{ratio:.2f}x {'faster' if ratio >= 1 else 'slower'}."
            )
    for contender, target, name, what, besides in _FLOORS:
        floor = fastest(contender, target)
        if ours and floor:
            ratio = ours["seconds"] / floor["seconds"]
            summary[f"{key}ratio_to_{name}_floor"] = round(ratio, 2)
            report.notes.append(
                f"{label}billing-sync takes {ratio:.1f}x the {what} floor "
                f"({floor['seconds']:.2f} s), and {besides}."
            )
    for row in source_rows:
        if row.get("status") == "wrong output":
            report.notes.append(
                f"{label}{row['contender']} ({row['configuration']}): {row['output']}"
            )
    if ours and ours.get("worker", {}).get("stages"):
        report.notes.append(
            f"{label}billing-sync's time by stage: " + stage_summary(ours["worker"]["stages"])
        )


def stage_summary(stages: dict[str, float], *, top: int = 8) -> str:
    """The largest stages of a load, e.g. ``warehouse COPY 3.1 s, normalize 1.2 s``;
    background stages overlap the others.

    >>> stage_summary({"a": 1.0, "b (background)": 2.5, "c": 0.001})
    'b (background) 2.50 s, a 1.00 s'
    """
    largest = sorted(stages.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in largest if seconds >= 0.01)
