"""Benchmark suites: ``python -m bench <suite>``. Each prints a table and writes JSON."""
