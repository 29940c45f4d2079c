"""The real pipeline: sandbox /metrics -> prometheus -> alertmanager -> receiver -> rollback.

Shared by `rollback-webhook demo`, tests/pipeline and benchmarks/pipeline.py; see
docs/demo.md for what is shortened and why.
"""

from lab.pipeline.configs import PipelineUnavailable
from lab.pipeline.harness import Cluster, Pipeline
from lab.pipeline.processes import Generation
from lab.pipeline.timing import Timing
from lab.pipeline.workloads import TRIGGER_FAULTS, Workload, wait_until

__all__ = [
    "TRIGGER_FAULTS",
    "Cluster",
    "Generation",
    "Pipeline",
    "PipelineUnavailable",
    "Timing",
    "Workload",
    "wait_until",
]
