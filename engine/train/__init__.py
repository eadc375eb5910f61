"""Training: estimator registry, search, splits and Trident's own GBDT."""
