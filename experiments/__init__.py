"""Experiments: assignment to arms (pure hashing, imported by serving), definitions, outcome analysis.

- :mod:`tenure.experiments.assignment`: the global holdout and experiment arms (standard library only).
- :mod:`tenure.experiments.analysis`: intervals, sample-ratio mismatch, power, CUPED (pure functions).
- :mod:`tenure.experiments.outcomes`: treatment events + ordinary events -> one row per assigned customer.
- :mod:`tenure.experiments.report`: the experiment report (JSON document and HTML page).
"""
