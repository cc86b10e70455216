"""How billing-sync runs on one machine (issue 18): Dagster's production layout (a gRPC
code server, ``dagster-daemon``, ``dagster-webserver``, the metrics exporter) as separate
processes under ``supervisord`` (the ``supervisor`` package), for ``billing-sync serve``
and the demo. Kubernetes and systemd layouts are files in ``deploy/``."""
