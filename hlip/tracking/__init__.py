"""Tracking: MLflow runs with lineage tags, the training logger, pyfunc export, registry, model card, lineage."""
