"""Benchmarks (not tests): run each as a script; see README, Performance."""
