"""Run records, provenance, MLflow tracking and the model registry."""
