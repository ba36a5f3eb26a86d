"""Studies that judge whether synthetic data helps (one module per study)."""
