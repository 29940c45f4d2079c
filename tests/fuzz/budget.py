"""The fuzz suites' fixed case budgets and hypothesis settings: derandomised (the same cases on
every run, so CI is reproducible and a failure replays), no example database, no deadline (the
sandbox's latency is not what is tested). README's "Fuzzing" section lists these counts."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PARSER_EXAMPLES = 300  # per property of the payload parser (three properties)
POLICY_EXAMPLES = 400  # the decision inputs: labels, times and cluster settings
SCHEMATHESIS_EXAMPLES = 25  # per API operation of docs/openapi.yaml (15 operations)


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
