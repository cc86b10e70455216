"""The demo: a simulated biller under a live change workload, synced into the warehouse
and the cache, the Dagster UI up (:func:`billing_sync.demo.run.run_demo`)."""
