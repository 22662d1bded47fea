"""Test support shared by unit tests, e2e tests, benchmarks and the demo."""
