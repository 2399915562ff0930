"""Audits on scored datasets: saved views, the label-shuffling experiment, exports."""
