"""Code that runs inside SageMaker jobs and endpoints, and the pipeline definitions built from it."""
