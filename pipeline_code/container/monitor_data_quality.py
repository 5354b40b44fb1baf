"""SageMaker entry script: ``python3 monitor_data_quality.py ARGS`` from the unpacked code bundle.

The job is ``dogbreeds_jobs/monitoring/monitor_data_quality.py``.
"""

from dogbreeds_jobs.monitoring.monitor_data_quality import main

if __name__ == "__main__":
    raise SystemExit(main())
