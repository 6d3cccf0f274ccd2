"""Evaluation: benchmarks in their published shapes, metrics with CIs, baselines, reports and plots."""
