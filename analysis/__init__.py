"""Analysis of highway_study run records: runs.csv, seaborn figures and report.md.

Reads only the run record on disk (summary.json, metrics.jsonl) and Optuna's storage; never
imports TensorFlow. Entry point: `python -m analysis [FOLDER ...]` (see docs/analysis.md).
"""
