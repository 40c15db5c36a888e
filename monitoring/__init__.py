"""Monitoring: Evidently drift and performance reports, alerts to ops, and the retrain policy."""

from tenure.monitoring.runner import MonitoringResult, parse_window, run_monitoring_pass

__all__ = ["MonitoringResult", "parse_window", "run_monitoring_pass"]
