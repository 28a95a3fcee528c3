"""Datasets, evaluation over them, metrics, matched-budget baselines and reports."""
