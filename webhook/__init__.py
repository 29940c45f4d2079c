"""rollback-webhook: Prometheus alerts in, safe audited Deployment rollbacks out."""

__version__ = "0.1.0"
