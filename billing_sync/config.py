"""Typed settings and the table catalog, loaded once and passed down.

Nothing here runs at import time: callers build :class:`Settings` with
:func:`load_settings` and a catalog with :func:`load_catalog`, then hand them on.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from billing_sync.secrets import mask_secrets

# libyaml's parser when PyYAML was built with it (several times faster), same safe constructors.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

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


ConverterName = Literal[
    "trim",
    "cyymmdd",
    "hhmmss",
    "cyymmdd_hhmmss",
    "implied_decimal",
    "float_money",
    "ebcdic",
    "latin1",
    "lookup",
]
# ``clear``: loaded as it is, an explicit opt-out of the default policy that needs a
# ``reason`` (billing_sync.transform.policy).
Protection = Literal["hmac", "last4", "redact", "clear"]

# What each converter produces: the catalog type its target column must have.
_CONVERTER_TARGETS: dict[str, tuple[str, ...]] = {
    "trim": ("text",),
    "cyymmdd": ("date",),
    "hhmmss": ("text",),
    "cyymmdd_hhmmss": ("timestamp",),
    "implied_decimal": ("decimal",),
    "float_money": ("decimal",),
    "ebcdic": ("text",),
    "latin1": ("text",),
    "lookup": ("text",),
}


class Converter(_Strict):
    """A converter of a column mapping (DESIGN §5), from its YAML form.

    ``trim`` (and the other plain names) is a string; ``{implied_decimal: 2}``,
    ``{float_money: 2}`` and ``{lookup: {code: value}}`` are one-key mappings.
    """

    name: ConverterName
    places: int | None = Field(default=None, ge=0, le=18)
    codes: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: object) -> object:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and len(value) == 1 and "name" not in value:
            ((name, argument),) = value.items()
            if name in ("implied_decimal", "float_money"):
                return {"name": name, "places": argument}
            if name == "lookup":
                codes = argument if isinstance(argument, dict) else {}
                return {"name": name, "codes": {str(k): str(v) for k, v in codes.items()}}
            return {"name": name}
        return value

    @model_validator(mode="after")
    def _argument_given(self) -> Converter:
        if self.name in ("implied_decimal", "float_money") and self.places is None:
            raise ValueError(f"{self.name} takes the number of decimal places: {{{self.name}: 2}}")
        if self.name == "lookup" and not self.codes:
            raise ValueError("lookup takes a non-empty mapping of codes: {lookup: {A: active}}")
        return self

    @property
    def label(self) -> str:
        """How quarantine lines name the converter: ``implied_decimal(2)``, ``lookup``."""
        return f"{self.name}({self.places})" if self.places is not None else self.name


class ColumnSpec(_Strict):
    """One column of the normalized entity: from a source column (or, for
    ``cyymmdd_hhmmss``, a ``[date, time]`` pair), or a ``constant``; optionally a
    ``converter`` and a ``protect`` policy (DESIGN §5)."""

    source: str | list[str] | None = None
    constant: str | int | float | bool | None = None
    target: str
    type: str
    nullable: bool = True
    converter: Converter | None = None
    protect: Protection | None = None
    reason: str | None = None  # why a ``protect: clear`` column may load in clear
    # What the column means, for the data dictionary (billing_sync.dictionary); entities
    # fed by several systems take the first catalog's that gives one.
    description: str | None = None

    @field_validator("target")
    @classmethod
    def _target_name(cls, value: str) -> str:
        return _check_identifier(value)

    @field_validator("source")
    @classmethod
    def _source_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        for name in [] if value is None else [value] if isinstance(value, str) else value:
            _check_identifier(name)
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if not _TYPE_PATTERN.match(value):
            raise ValueError(
                f"unknown type {value!r}; use text, integer, bigint, date, timestamp, "
                "boolean or decimal(p,s)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        where = f"column {self.target}"
        is_constant = "constant" in self.model_fields_set
        if is_constant == (self.source is not None):
            raise ValueError(f"{where}: give exactly one of source and constant")
        if is_constant and (self.converter or self.protect):
            raise ValueError(f"{where}: a constant takes no converter or protect")
        name = self.converter.name if self.converter else None
        if isinstance(self.source, list) and (name != "cyymmdd_hhmmss" or len(self.source) != 2):
            raise ValueError(
                f"{where}: a list of source columns is only for converter cyymmdd_hhmmss"
                " with two columns [date, time]"
            )
        if name == "cyymmdd_hhmmss" and not isinstance(self.source, list):
            raise ValueError(f"{where}: cyymmdd_hhmmss takes source: [date, time]")
        if name is not None:
            wanted = _CONVERTER_TARGETS[name]
            if self.type.split("(")[0] not in wanted:
                raise ValueError(f"{where}: converter {name} gives {wanted[0]}, not {self.type}")
        if self.protection is not None and self.type != "text":
            raise ValueError(f"{where}: protect {self.protect} gives text, not {self.type}")
        if (self.protect == "clear") != bool(self.reason and self.reason.strip()):
            raise ValueError(
                f"{where}: protect clear takes a reason (why the column may load in clear),"
                " and only protect clear takes one"
            )
        return self

    @property
    def protection(self) -> Protection | None:
        """The policy applied to the values: None for none or an explicit ``clear``."""
        return None if self.protect == "clear" else self.protect

    @property
    def is_constant(self) -> bool:
        return self.source is None

    @property
    def source_names(self) -> list[str]:
        """The source columns this column reads (none for a constant)."""
        if self.source is None:
            return []
        return [self.source] if isinstance(self.source, str) else list(self.source)

    @property
    def is_plain(self) -> bool:
        """A source column taken as it is: no converter, no protection."""
        return isinstance(self.source, str) and self.converter is None and self.protection is None


class SoftDelete(_Strict):
    """Rows whose ``column`` holds one of ``values`` are deletions in the source."""

    column: str
    values: list[str]


CursorFormat = Literal["timestamp", "cyymmdd_hhmmss"]
# What happens to rows whose change stamp the tail cannot read (NULL, 'infinity', not a
# real date or time; billing_sync.capture.unreadable): counted and reported either way.
UnreadableCursorRule = Literal["quarantine", "report"]


class TableMapping(_Strict):
    """How one source table becomes rows of one normalized entity.

    ``cursor`` is one timestamp column (``cursor_format: timestamp``, the default) or,
    with ``cursor_format: cyymmdd_hhmmss``, the two integer columns ``[date, time]``
    (CYYMMDD, HHMMSS) in the catalog's timezone, compared as a tuple (see
    :mod:`billing_sync.capture.window`).
    """

    table: str
    entity: str
    key: list[str] = Field(min_length=1)
    cursor: str | list[str]
    cursor_format: CursorFormat = "timestamp"
    cursor_fallback: str | None = None
    unreadable_cursor: UnreadableCursorRule = "quarantine"
    soft_delete: SoftDelete | None = None
    tier: Tier = "standard"
    drop: list[str] = Field(default_factory=list)
    columns: list[ColumnSpec] = Field(min_length=1)
    # SQL types of the source columns, filled from the reflected schema at start
    # (billing_sync.source.reflect); fetches use them. Not written in catalogs.
    source_types: dict[str, str] = Field(default_factory=dict)

    _names = field_validator("table", "entity")(_check_identifier)

    @field_validator("cursor", "drop")
    @classmethod
    def _cursor_names(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            _check_identifier(name)
        return value

    @model_validator(mode="after")
    def _cursor_fits_format(self) -> TableMapping:
        columns = self.cursor_columns
        if self.cursor_format == "timestamp" and len(columns) != 1:
            raise ValueError(
                f"{self.table}: cursor_format timestamp takes one cursor column, got {columns}"
            )
        if self.cursor_format == "cyymmdd_hhmmss":
            if len(columns) != 2:
                raise ValueError(
                    f"{self.table}: cursor_format cyymmdd_hhmmss takes two cursor columns"
                    f" [date, time], got {columns}"
                )
            if self.cursor_fallback is not None:
                raise ValueError(
                    f"{self.table}: cursor_fallback is only allowed with cursor_format timestamp"
                )
        return self

    @property
    def cursor_columns(self) -> list[str]:
        """The cursor's source columns, in index order."""
        return [self.cursor] if isinstance(self.cursor, str) else list(self.cursor)

    @model_validator(mode="after")
    def _keys_are_mapped(self) -> TableMapping:
        mapped = {column.source for column in self.columns if isinstance(column.source, str)}
        missing = [name for name in self.key if name not in mapped]
        if missing:
            raise ValueError(f"key column(s) {missing} of {self.table} are not mapped")
        unconverted = {
            c.source for c in self.columns if isinstance(c.source, str) and not c.protection
        }
        protected = [name for name in self.key if name not in unconverted]
        if protected:
            raise ValueError(f"key column(s) {protected} of {self.table} cannot be protected")
        if self.soft_delete and self.soft_delete.column not in mapped:
            raise ValueError(
                f"soft-delete column {self.soft_delete.column} of {self.table} is not mapped"
            )
        targets = [column.target for column in self.columns]
        doubled = sorted({name for name in targets if targets.count(name) > 1})
        if doubled:
            raise ValueError(f"{self.table}: target column(s) {doubled} mapped twice")
        self.check_not_dropped(self.drop)
        return self

    def check_not_dropped(self, dropped: list[str]) -> None:
        """Refuse a mapping that would select a column marked ``drop``."""
        for column in self.columns:
            named = sorted(set(column.source_names) & set(dropped))
            if named:
                raise ValueError(
                    f"{self.table}: column {column.target} selects {named}, marked drop"
                    " (never selected)"
                )
        for name in {*self.cursor_columns, *([self.cursor_fallback] if self.cursor_fallback
                                              else [])} & set(dropped):  # fmt: skip
            raise ValueError(f"{self.table}: the cursor column {name} is marked drop")

    @property
    def target_key(self) -> list[str]:
        """The key's column names in the normalized entity, in key order."""
        by_source = {c.source: c.target for c in self.columns if isinstance(c.source, str)}
        return [by_source[name] for name in self.key]

    @property
    def source_columns(self) -> list[str]:
        """Every source column the mappings read, once each, in mapping order."""
        names = (name for column in self.columns for name in column.source_names)
        return list(dict.fromkeys(names))

    def column(self, source: str) -> ColumnSpec:
        return next(column for column in self.columns if column.source == source)


class SourceCatalog(_Strict):
    """The mappings of one source system (one YAML file in ``catalog/``)."""

    system: str
    schema_name: str = Field(alias="schema")
    timezone: str = "UTC"
    drop: list[str] = Field(default_factory=list)  # columns never selected, in every table
    tables: list[TableMapping]
    source_file: str | None = Field(default=None, exclude=True)  # set by load_catalog

    @model_validator(mode="after")
    def _nothing_dropped_is_selected(self) -> SourceCatalog:
        for mapping in self.tables:
            mapping.check_not_dropped(self.drop)
        return self

    @property
    def uses_hmac(self) -> bool:
        return any(c.protect == "hmac" for mapping in self.tables for c in mapping.columns)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA timezone {value!r}") from error
        return value

    @cached_property
    def by_table(self) -> dict[str, TableMapping]:
        return {mapping.table: mapping for mapping in self.tables}

    def for_tier(self, tier: Tier) -> list[TableMapping]:
        return [mapping for mapping in self.tables if mapping.tier == tier]

    def local_time(self, instant: datetime) -> datetime:
        """``instant`` as this biller's naive local time, the way its watermarks hold time.

        An aware ``instant`` is converted to the catalog's ``timezone``; a naive one is taken
        as local already.

        >>> from datetime import UTC
        >>> catalog = SourceCatalog.model_validate(
        ...     {"system": "s", "schema": "s", "timezone": "America/Chicago", "tables": []})
        >>> catalog.local_time(datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
        datetime.datetime(2026, 11, 25, 12, 0)
        """
        if instant.tzinfo is None:
            return instant
        return instant.astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)


class CaptureSettings(_Strict):
    """Watermark capture knobs (DESIGN §4)."""

    # None: derived per source from what its horizon probe measures (engine.waits); a
    # number: that fixed delay, always.
    delay_seconds: float | None = Field(default=None, ge=0)
    batch_rows: int = Field(default=20_000, gt=0)
    use_transaction_horizon: bool = True
    lookback_seconds: float = Field(default=30.0, ge=0)
    lookback_interval_seconds: float = Field(default=5.0, ge=0)
    # Keys a micro-batch sweeps at most (billing_sync.capture.lookback): a pass goes on
    # over the next batches, so no batch waits for a whole region's read.
    lookback_slice_rows: int = Field(default=20_000, gt=0)
    snapshot_rows: int = Field(default=50_000, gt=0)
    shrink_check_interval_seconds: float = Field(default=300.0, ge=0)
    max_shrink_fraction: float = Field(default=0.05, ge=0, le=1)
    # Every statement on a source (capture, snapshot chunks and counts, reflection, verify)
    # is cancelled by the source after this long: a runaway query must not run on the
    # biller for ever, nor after the client died. Raise it for a huge table's count(*).
    statement_timeout_seconds: float = Field(default=300.0, gt=0)
    # No longer read: MariaDB/MySQL capture was refused unless this was true, until its
    # parity defect was found and fixed (docs/sources.md). Accepted so that settings
    # files which opted in still load.
    allow_unproven_engines: bool = False
    # Hot rows (billing_sync.engine.read_ahead): rows rewritten faster than the delay stay
    # above the horizon; the tables of these tiers read them ahead, without moving the
    # watermark, at most this many rows per batch.
    read_ahead_tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["priority"]))
    read_ahead_rows: int = Field(default=1_000, ge=0)
    # The probe runs only while the horizon trails the source clock by this much
    # (billing_sync.engine.read_ahead: below it only rows rewritten faster are starved).
    read_ahead_min_lag_seconds: float = Field(default=0.1, ge=0)


class ValidationSettings(_Strict):
    """Which validator the tail's hot path runs (validate.shadow)."""

    # polars: the suites compiled to Polars, Great Expectations re-validating in the
    # background; great_expectations: GX on the hot path, as before.
    hot_path: Literal["polars", "great_expectations"] = "polars"
    # Of the batches Polars passed, one per entity this often goes to GX (0: every one);
    # every batch Polars failed does.
    gx_sample_seconds: float = Field(default=30.0, ge=0)


class TierSettings(_Strict):
    """How a tier's sync runs behave."""

    batches_per_run: int = Field(default=900, gt=0)
    # The longest wait between micro-batches; within it the source is probed every
    # probe_interval_seconds (0: not probed) for rows to read (engine.poll).
    poll_interval_seconds: float = Field(default=1.0, ge=0)
    probe_interval_seconds: float = Field(default=0.1, ge=0)
    # A tier loop applies its batches to the DuckDB cache in the background, gathered
    # this long (0: each batch at once): fewer, larger applies (engine.cache_trail).
    cache_apply_interval_seconds: float = Field(default=0.0, ge=0)
    freshness_sla_seconds: float = Field(gt=0)
    # Scale-out (billing_sync.shards): the tier's entities in this many groups, each its own
    # sensor, run and concurrency key; or the groups named (entity names), which must not
    # overlap.
    shards: int = Field(default=1, gt=0)
    shard_entities: list[list[str]] | None = None


def default_tiers() -> dict[Tier, TierSettings]:
    """Each tier's settings when the settings name none."""
    return _default_tiers()


def _default_tiers() -> dict[Tier, TierSettings]:
    return {
        # Priority gathers its cache applies for 1 s too: a DuckDB apply opens the file
        # and checkpoints it on close, and one per sub-second batch cost the process
        # about a tenth of its CPU on the 3,500 rows/s peers' table (docs/performance.md).
        "priority": TierSettings(freshness_sla_seconds=10, cache_apply_interval_seconds=1),
        "standard": TierSettings(
            freshness_sla_seconds=60, probe_interval_seconds=0.5, cache_apply_interval_seconds=2
        ),
        "bulk": TierSettings(
            freshness_sla_seconds=900,
            poll_interval_seconds=5,
            probe_interval_seconds=0,
            cache_apply_interval_seconds=10,
            batches_per_run=300,
        ),
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


class ServeSettings(_Strict):
    """``billing-sync serve``: where its processes listen (docs/production.md). The
    webserver has no login: keep it on localhost or behind an authenticating proxy."""

    code_server_port: int = Field(default=4266, gt=0, lt=65536)
    webserver_host: str = "127.0.0.1"
    webserver_port: int = Field(default=3000, gt=0, lt=65536)
    metrics_host: str = "127.0.0.1"
    # Prometheus scrapes /metrics here; 0: no metrics exporter.
    metrics_port: int = Field(default=9464, ge=0, lt=65536)
    # A program supervisord restarted counts this long: `health` says DEGRADED and the
    # process_restarted alert fires, then resolves.
    restart_alert_seconds: float = Field(default=60.0, gt=0)


class RetentionSettings(_Strict):
    """How long finished Dagster runs, their events and released quarantine lines are kept."""

    max_age_hours: float = Field(default=72.0, gt=0)


class SinkSettings(_Strict):
    """One message bus the change events go to (docs/change-events.md).

    ``url``: ``nats://host:4222`` or ``redis://host:6379/0``; one with a password belongs in
    ``BILLING_SYNC_FEED_URL_<SINK>`` (the sink's name in capitals), never in a file.
    """

    kind: Literal["nats", "redis"]
    url: str | None = None
    # Redis streams are ``<prefix>:<entity>``; NATS subjects ``<prefix>.<entity>`` in the
    # stream ``<prefix>_<entity>``.
    prefix: str = Field(default="billing", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    # Ask the outbox for ``r`` events of rows a snapshot or backfill loads (a first load of
    # millions of rows then goes on the bus too).
    snapshot_events: bool = False
    # Redis: each entity's stream is trimmed to about this many entries (XADD MAXLEN ~).
    max_len: int = Field(default=1_000_000, gt=0)
    # NATS: the stream's duplicate window, in which a re-published id is dropped.
    duplicate_window_seconds: float = Field(default=600.0, gt=0)


class FeedSettings(_Strict):
    """The change-event relays (billing_sync.feed)."""

    sinks: dict[str, SinkSettings] = Field(default_factory=dict)
    # Events every sink published are deleted; older ones are deleted anyway (an alert
    # names the sinks that had not published them).
    retention_hours: float = Field(default=72.0, gt=0)
    # A sink further behind than this (oldest unpublished event's age) raises feed_lag.
    lag_sla_seconds: float = Field(default=10.0, gt=0)
    batch_events: int = Field(default=1000, gt=0)
    poll_interval_seconds: float = Field(default=0.2, ge=0)
    # A sink that does not answer is retried after 1, 2, 4, ... seconds, at most this.
    max_backoff_seconds: float = Field(default=10.0, gt=0)
    # How long one relay run lasts before the sensor starts the next (a deploy then
    # takes over within this).
    run_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("sinks")
    @classmethod
    def _sink_names(cls, value: dict[str, SinkSettings]) -> dict[str, SinkSettings]:
        for name in value:
            _check_identifier(name)
        return value


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
    catalog_dir: Path | None = None
    suites_dir: Path | None = None
    capture: CaptureSettings = CaptureSettings()
    validation: ValidationSettings = ValidationSettings()
    tiers: dict[Tier, TierSettings] = Field(default_factory=_default_tiers)
    alerts: AlertSettings = AlertSettings()
    retention: RetentionSettings = RetentionSettings()
    serve: ServeSettings = ServeSettings()
    feed: FeedSettings = FeedSettings()
    # Analysts' read copy of the cache (billing_sync.load.read_copy): republished at most
    # this often while the sync writes the cache; 0: never (a benchmark, no analysts).
    read_copy_interval_seconds: float = Field(default=2.0, ge=0)
    # From BILLING_SYNC_HMAC_KEY only; never dumped, never shown (SecretStr).
    hmac_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    # A file holding the key (the demo's, 0600): read when the variable is not set, so the
    # key itself never sits in a settings file.
    hmac_key_file: Path | None = None

    @property
    def pause_file(self) -> Path:
        """While this file exists, sensors start no sync run and runs end after their batch."""
        return self.state_dir / "paused"

    @property
    def resolved_cache_path(self) -> Path:
        return self.cache_path or self.state_dir / "cache.duckdb"

    @property
    def read_copy_path(self) -> Path:
        """The copy of the cache analysts open (``billing_sync.load.read_copy``)."""
        cache = self.resolved_cache_path
        return cache.with_name(f"{cache.stem}-read{cache.suffix}")

    def tier(self, tier: Tier) -> TierSettings:
        return self.tiers.get(tier) or _default_tiers()[tier]


# The key of protected columns: read from this variable by load_settings only; the
# Dagster resource resolves it with dg.EnvVar and hands it on under the same name.
HMAC_KEY_ENV = "BILLING_SYNC_HMAC_KEY"

_ENV_FIELDS = {
    "BILLING_SYNC_STATE_DIR": "state_dir",
    "BILLING_SYNC_SOURCE_URL": "source_url",
    "BILLING_SYNC_WAREHOUSE_URL": "warehouse_url",
    "BILLING_SYNC_CACHE_PATH": "cache_path",
    "BILLING_SYNC_CATALOG_DIR": "catalog_dir",
    "BILLING_SYNC_SUITES_DIR": "suites_dir",
    HMAC_KEY_ENV: "hmac_key",
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
    if env.get("BILLING_SYNC_SYSTEMS"):
        raw["systems"] = [name.strip() for name in env["BILLING_SYNC_SYSTEMS"].split(",") if name]
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
    _feed_urls(raw, env)  # also for sinks the overrides name: the URL is the secret part
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        # ``from None``: pydantic's own message repeats each wrong value (``input_value``),
        # a URL with its password included; a chained cause would show it in tracebacks.
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid settings{where}:\n{validation_lines(error)}") from None
    return _with_key_file(settings)


FEED_URL_ENV_PREFIX = "BILLING_SYNC_FEED_URL_"


def _feed_urls(raw: dict[str, object], env: Mapping[str, str]) -> None:
    """``BILLING_SYNC_FEED_URL_<SINK>`` sets that sink's URL (it may carry a password)."""
    feed = raw.get("feed")
    feed = dict(feed) if isinstance(feed, dict) else {}
    sinks = feed.get("sinks")
    sinks = dict(sinks) if isinstance(sinks, dict) else {}
    for name, sink in list(sinks.items()):
        url = env.get(f"{FEED_URL_ENV_PREFIX}{str(name).upper()}")
        if url and isinstance(sink, dict):
            sinks[name] = {**sink, "url": url}
    if sinks:
        raw["feed"] = {**feed, "sinks": sinks}


def _with_key_file(settings: Settings) -> Settings:
    """The key from ``hmac_key_file`` when the environment gave none."""
    if settings.hmac_key is not None or settings.hmac_key_file is None:
        return settings
    try:
        key = settings.hmac_key_file.read_text().strip()
    except OSError as error:
        raise ConfigError(
            f"cannot read the HMAC key file {settings.hmac_key_file} (hmac_key_file):"
            f" {error.strerror}"
        ) from None
    return settings.model_copy(update={"hmac_key": SecretStr(key)})


def validation_lines(error: ValidationError) -> str:
    """A pydantic error as ``location: message`` lines, without the values it was given
    (they may be secrets) and masked in case a message quotes one anyway."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return mask_secrets("\n".join(lines))


def load_catalog(system: str, *, directory: Path = CATALOG_DIR) -> SourceCatalog:
    """Read and validate ``<directory>/<system>.yaml``; errors name the file and table.

    A file read before and not changed since (same modification time and size) is not
    parsed again: sensors build an engine every tick, and parsing the two packaged
    catalogs cost 127 ms of CPU each time under the bench's workload (0.9 ms now). The
    model is frozen, so the one returned is shared."""
    path = directory / f"{system}.yaml"
    try:
        status = path.stat()
    except OSError as error:
        raise ConfigError(f"cannot read catalog {path}: {error}") from error
    return _parsed_catalog(str(path), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=64)
def _parsed_catalog(path: str, modified_ns: int, size: int) -> SourceCatalog:
    del modified_ns, size  # the cache's key: a changed file is read again
    try:
        raw = yaml.load(Path(path).read_text(), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read catalog {path}: {error}") from error
    try:
        return SourceCatalog.model_validate({**(raw or {}), "source_file": path})
    except ValidationError as error:
        raise ConfigError(f"invalid catalog {path}:\n{error}") from error


def load_catalogs(settings: Settings) -> list[SourceCatalog]:
    """The catalogs of ``settings.systems``, from ``catalog_dir`` when set (an operator's
    own mappings, kept outside the package), else the packaged ``catalog/`` folder."""
    directory = settings.catalog_dir or CATALOG_DIR
    return [load_catalog(system, directory=directory) for system in settings.systems]
