"""The handler module the SageMaker inference toolkit imports (SAGEMAKER_PROGRAM=inference.py).

The handlers live in ``dogbreeds_jobs/serving/inference.py``; a model artifact's ``code/`` carries
both files (``dogbreeds_jobs/serving/model_artifact.py`` lists what it copies).
"""

from dogbreeds_jobs.serving.inference import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
