"""Serving: the Triton server launcher, client helper, deployment gates, load test and rollout."""
