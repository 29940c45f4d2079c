"""The rules bundle: the PrometheusRule manifest and the tool that turns it into a rule file.

Not installed with the `webhook` package; tests and scripts import `rules.extract` from the repo.
"""
