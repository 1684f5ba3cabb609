"""Helpers shared by the test suites: the reference model, workloads."""
