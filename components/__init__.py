"""synthmed components: the pure, typed library (no Prefect). See docs/ARCHITECTURE.md."""
