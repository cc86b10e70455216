"""Feed settings and Dagster wiring (issue 16): the sink URL from the environment, and per
sink a ``feed/<sink>`` asset with its freshness check, a job and a sensor."""

from __future__ import annotations

import dagster as dg

from billing_sync.config import load_settings
from billing_sync.defs.feed import feed_definitions
from billing_sync.defs.resources import BillingSyncResource
from billing_sync.feed.sinks import SinkConfigError, check_url


def test_sink_url_comes_from_the_environment_and_a_bad_one_is_named() -> None:
    settings = load_settings(
        env={"BILLING_SYNC_FEED_URL_BUS": "nats://u:pw-123@10.0.0.1:4222"},
        feed={"sinks": {"bus": {"kind": "nats"}, "cache": {"kind": "redis", "url": "x"}}},
    )
    assert settings.feed.sinks["bus"].url == "nats://u:pw-123@10.0.0.1:4222"
    assert check_url("bus", settings.feed.sinks["bus"]) == "nats://u:pw-123@10.0.0.1:4222"
    try:
        check_url("cache", settings.feed.sinks["cache"])
    except SinkConfigError as error:
        assert "feed sink 'cache' (redis): malformed URL" in str(error)
    else:
        raise AssertionError("a URL without a scheme passed")


def test_each_sink_has_an_asset_with_a_freshness_check_a_job_and_a_sensor() -> None:
    settings = load_settings(
        env={}, feed={"sinks": {"bus": {"kind": "nats", "url": "nats://127.0.0.1:4222"}}}
    )
    definitions = dg.Definitions.merge(
        feed_definitions(settings),
        dg.Definitions(resources={"billing_sync": BillingSyncResource()}),
    )
    graph = definitions.resolve_asset_graph()
    assert dg.AssetKey(["feed", "bus"]) in graph.get_all_asset_keys()
    assert dg.AssetCheckKey(dg.AssetKey(["feed", "bus"]), "freshness") in graph.asset_check_keys
    assert definitions.resolve_job_def("feed_bus_job").name == "feed_bus_job"
    assert definitions.resolve_sensor_def("feed_bus_sensor").job_name == "feed_bus_job"
    assert feed_definitions(load_settings(env={})).assets == []
