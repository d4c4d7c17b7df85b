"""Benchmarks of the relay and the analytics index (`python -m bench`; docs/benchmarks.md)."""
