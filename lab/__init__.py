"""The test bench beside the product: the real Prometheus/Alertmanager pipeline, the demo, and
the rigs tests and benchmarks share. Never imported by `webhook` (the product package)."""
