"""Customer insight: KPIs, customer value and the voice of the customer, from the canonical tables
to report data (JSON) that the CLI prints and the service's dashboard draws.

Imports ``tenure`` and ``tenure.features`` only (never training, serving, monitoring or pipelines).
"""
