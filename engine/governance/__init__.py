"""Governance: sensitive attributes, proxies, fairness, audit."""
