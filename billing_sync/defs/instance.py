"""Preparing a Dagster instance folder before the daemon and webserver start."""

import shutil
from pathlib import Path

import dagster as dg
from dagster._core.instance.ref import InstanceRef


def prepare_instance(home: Path, *, config: Path) -> None:
    """Copy ``config`` to ``home/dagster.yaml`` and create the instance's storage.

    Creating the SQLite storage once, before several processes (daemon, code server,
    webserver) open it, avoids their racing migrations ("more than one head present").
    """
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config, home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))):
        pass
