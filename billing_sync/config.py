"""Typed settings and the table catalog, loaded once and passed down.

Nothing here runs at import time: callers build :class:`Settings` with
:func:`load_settings` and a catalog with :func:`load_catalog`, then hand them on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Tier = Literal["priority", "standard", "bulk"]
TIERS: tuple[Tier, ...] = ("priority", "standard", "bulk")

_TYPE_PATTERN = re.compile(r"^(text|integer|bigint|date|timestamp|boolean|decimal\(\d+,\d+\))$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")
CATALOG_DIR = Path(__file__).parent / "catalog"


class ConfigError(ValueError):
    """A settings file or catalog mapping is wrong; the message names where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain identifier")
    return value


class ColumnSpec(_Strict):
    """One source column mapped to one column of the normalized entity."""

    source: str
    target: str
    type: str
    nullable: bool = True

    _names = field_validator("source", "target")(_check_identifier)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if not _TYPE_PATTERN.match(value):
            raise ValueError(
                f"unknown type {value!r}; use text, integer, bigint, date, timestamp, "
                "boolean or decimal(p,s)"
            )
        return value


class SoftDelete(_Strict):
    """Rows whose ``column`` holds one of ``values`` are deletions in the source."""

    column: str
    values: list[str]


class TableMapping(_Strict):
    """How one source table becomes rows of one normalized entity."""

    table: str
    entity: str
    key: list[str] = Field(min_length=1)
    cursor: str
    cursor_fallback: str | None = None
    soft_delete: SoftDelete | None = None
    tier: Tier = "standard"
    columns: list[ColumnSpec] = Field(min_length=1)

    _names = field_validator("table", "entity", "cursor")(_check_identifier)

    @model_validator(mode="after")
    def _keys_are_mapped(self) -> TableMapping:
        mapped = {column.source for column in self.columns}
        missing = [name for name in self.key if name not in mapped]
        if missing:
            raise ValueError(f"key column(s) {missing} of {self.table} are not mapped")
        if self.soft_delete and self.soft_delete.column not in mapped:
            raise ValueError(
                f"soft-delete column {self.soft_delete.column} of {self.table} is not mapped"
            )
        return self

    @property
    def target_key(self) -> list[str]:
        """The key's column names in the normalized entity, in key order."""
        by_source = {column.source: column.target for column in self.columns}
        return [by_source[name] for name in self.key]

    def column(self, source: str) -> ColumnSpec:
        return next(column for column in self.columns if column.source == source)


class SourceCatalog(_Strict):
    """The mappings of one source system (one YAML file in ``catalog/``)."""

    system: str
    schema_name: str = Field(alias="schema")
    tables: list[TableMapping]

    @cached_property
    def by_table(self) -> dict[str, TableMapping]:
        return {mapping.table: mapping for mapping in self.tables}

    def for_tier(self, tier: Tier) -> list[TableMapping]:
        return [mapping for mapping in self.tables if mapping.tier == tier]


class CaptureSettings(_Strict):
    """Watermark capture knobs (DESIGN §4)."""

    delay_seconds: float = Field(default=1.0, ge=0)
    batch_rows: int = Field(default=20_000, gt=0)
    use_transaction_horizon: bool = True
    lookback_seconds: float = Field(default=30.0, ge=0)
    lookback_interval_seconds: float = Field(default=5.0, ge=0)
    snapshot_rows: int = Field(default=50_000, gt=0)
    shrink_check_interval_seconds: float = Field(default=300.0, ge=0)
    max_shrink_fraction: float = Field(default=0.05, ge=0, le=1)


class TierSettings(_Strict):
    """How a tier's sync runs behave."""

    batches_per_run: int = Field(default=120, gt=0)
    poll_interval_seconds: float = Field(default=1.0, ge=0)
    freshness_sla_seconds: float = Field(gt=0)


def _default_tiers() -> dict[Tier, TierSettings]:
    return {
        "priority": TierSettings(freshness_sla_seconds=10),
        "standard": TierSettings(freshness_sla_seconds=60),
        "bulk": TierSettings(freshness_sla_seconds=900, poll_interval_seconds=5),
    }


class AlertSettings(_Strict):
    """Where alerts go and when conditions count as alerts (DESIGN §8).

    ``webhook_url`` comes from ``BILLING_SYNC_ALERT_WEBHOOK_URL`` (it often carries a
    token: keep it in the environment); without it alerts are only logged.
    """

    webhook_url: str | None = None
    format: Literal["json", "slack"] = "json"
    timeout_seconds: float = Field(default=5.0, gt=0)
    horizon_hold_limit_seconds: float = Field(default=120.0, gt=0)
    quarantine_spike_rows: int = Field(default=20, gt=0)
    quarantine_spike_window_seconds: float = Field(default=300.0, gt=0)
    late_rows_window_seconds: float = Field(default=600.0, gt=0)


class RetentionSettings(_Strict):
    """How long finished Dagster runs, their events and released quarantine lines are kept."""

    max_age_hours: float = Field(default=72.0, gt=0)


class Settings(_Strict):
    """Everything a sync needs to know, resolved once.

    ``source_url`` and ``warehouse_url`` may stay unset: :mod:`billing_sync.postgres`
    then derives them from ``BILLING_SYNC_PG_URL`` or an embedded server in ``state_dir``.
    """

    state_dir: Path = Path(".billing-sync")
    source_url: str | None = None
    source_urls: dict[str, str] = Field(default_factory=dict)
    warehouse_url: str | None = None
    cache_path: Path | None = None
    systems: list[str] = ["icoms"]
    capture: CaptureSettings = CaptureSettings()
    tiers: dict[Tier, TierSettings] = Field(default_factory=_default_tiers)
    alerts: AlertSettings = AlertSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def pause_file(self) -> Path:
        """While this file exists, sensors start no sync run and runs end after their batch."""
        return self.state_dir / "paused"

    @property
    def resolved_cache_path(self) -> Path:
        return self.cache_path or self.state_dir / "cache.duckdb"

    def tier(self, tier: Tier) -> TierSettings:
        return self.tiers.get(tier) or _default_tiers()[tier]


_ENV_FIELDS = {
    "BILLING_SYNC_STATE_DIR": "state_dir",
    "BILLING_SYNC_SOURCE_URL": "source_url",
    "BILLING_SYNC_WAREHOUSE_URL": "warehouse_url",
    "BILLING_SYNC_CACHE_PATH": "cache_path",
}
_ALERT_ENV_FIELDS = {
    "BILLING_SYNC_ALERT_WEBHOOK_URL": "webhook_url",
    "BILLING_SYNC_ALERT_FORMAT": "format",
}


def load_settings(
    *, path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Build settings from an optional YAML file, then the environment, then ``overrides``.

    ``path`` defaults to ``$BILLING_SYNC_CONFIG`` when that is set.
    """
    env = os.environ if env is None else env
    raw: dict[str, object] = {}
    path = path or (Path(env["BILLING_SYNC_CONFIG"]) if env.get("BILLING_SYNC_CONFIG") else None)
    if path is not None:
        try:
            raw.update(yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read settings file {path}: {error}") from error
    for variable, field in _ENV_FIELDS.items():
        if env.get(variable):
            raw[field] = env[variable]
    prefix = "BILLING_SYNC_SOURCE_URL_"
    per_system = {
        variable.removeprefix(prefix).lower(): value
        for variable, value in env.items()
        if variable.startswith(prefix) and value
    }
    if per_system:
        given = raw.get("source_urls")
        raw["source_urls"] = {**(given if isinstance(given, dict) else {}), **per_system}
    for variable, name in _ALERT_ENV_FIELDS.items():
        if env.get(variable):
            alerts = raw.get("alerts")
            raw["alerts"] = {**(alerts if isinstance(alerts, dict) else {}), name: env[variable]}
    raw.update(overrides)
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid settings{f' in {path}' if path else ''}:\n{error}") from error


def load_catalog(system: str, *, directory: Path = CATALOG_DIR) -> SourceCatalog:
    """Read and validate ``<directory>/<system>.yaml``; errors name the file and table."""
    path = directory / f"{system}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read catalog {path}: {error}") from error
    try:
        return SourceCatalog.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid catalog {path}:\n{error}") from error
