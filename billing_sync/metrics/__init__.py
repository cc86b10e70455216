"""Prometheus metrics (issue 18): an exporter that reads the warehouse, the billers and the
Dagster instance at each scrape (:mod:`billing_sync.metrics.collector`), served by
``billing-sync metrics`` (a program of ``billing-sync serve``)."""
