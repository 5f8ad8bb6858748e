"""Benchmarks and the synthetic catalog generator the tests share."""
