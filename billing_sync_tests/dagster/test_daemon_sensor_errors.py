"""End to end (issue 14 item 1): a sensor that raises on every tick under the real
dagster-daemon raises an alert naming the sensor and its error; the webhook receives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from billing_sync.defs.instance import prepare_instance
from billing_sync_tests.webhook import webhook_server

pytestmark = [pytest.mark.dagster, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_a_sensor_failing_every_tick_raises_an_alert_naming_it(
    settings_file: Path, tmp_path: Path
) -> None:
    with webhook_server() as hook:
        raw = yaml.safe_load(settings_file.read_text())
        # The warehouse is set up, the source is gone: the sync sensors raise every tick
        # (their probe reads the source); the alerts sensor itself needs only the instance.
        raw["source_url"] = raw["source_url"].rsplit("@", 1)[0] + "@127.0.0.1:9/nowhere"
        raw["alerts"] = {"webhook_url": hook.url}
        settings_file.write_text(yaml.safe_dump(raw))
        home = tmp_path / "dagster_home"
        prepare_instance(home, config=REPO / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "BILLING_SYNC_CONFIG": str(settings_file)}
        log = tmp_path / "daemon.log"
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m",
             "billing_sync.definitions"],
            cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        started = time.monotonic()
        try:
            alert = None
            while alert is None and time.monotonic() - started < 150:
                alert = next(
                    (
                        body
                        for body in hook.of_kind("sensor_error", "firing")
                        if body["subject"] == "sync_priority_sensor"
                    ),
                    None,
                )
                time.sleep(1)
            assert alert is not None, (
                [b.get("key") for b in hook.bodies],
                log.read_text()[-3000:],
            )
            print(f"sensor_error alert {time.monotonic() - started:.1f} s after daemon start")
            assert "failed its last 2 ticks" in alert["summary"]
            assert "cannot reach the source" in alert["summary"], alert["summary"]
            password = urlsplit(raw["source_url"]).password
            assert not password or password not in str(alert)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
