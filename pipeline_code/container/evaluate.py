"""SageMaker entry script: ``python3 evaluate.py ARGS`` from the unpacked code bundle.

The job is ``dogbreeds_jobs/training/evaluate.py``.
"""

from dogbreeds_jobs.training.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
