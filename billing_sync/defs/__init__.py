"""The only package that imports dagster: resources, assets, sensors, checks, jobs."""
