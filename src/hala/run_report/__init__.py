"""One page per pipeline run, built from MLflow alone (issue 14).

``build_report(parent_run_id, client)`` gives the HTML (Tables 1 and 2 beside the report's, gate
verdicts and model aliases, the data funnel, SFT curves, judge and FP8 figures, compute and cost,
stage outcomes, lineage); ``write_report`` writes it; ``log_compute_metrics`` logs the compute and
cost figures on the parent run; ``hala report RUN_ID --out FILE`` rebuilds the page of any past run.
"""

from hala.run_report.compute import log_compute_metrics
from hala.run_report.page import build_report, log_report, write_report

__all__ = ["build_report", "log_compute_metrics", "log_report", "write_report"]
