"""An in-memory Kubernetes API server for tests, the demo and benchmarks (see docs/sandbox.md)."""
