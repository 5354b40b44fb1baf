"""SageMaker entry script: ``python3 merge_baseline.py ARGS`` from the unpacked code bundle.

The job is ``dogbreeds_jobs/data/merge_baseline.py``.
"""

from dogbreeds_jobs.data.merge_baseline import main

if __name__ == "__main__":
    raise SystemExit(main())
