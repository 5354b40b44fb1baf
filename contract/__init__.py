"""What every part of the project agrees on: settings, resource names, metric names, event types.

This is the bottom layer. It imports nothing of the project, so ``pipeline_code`` (the pipeline
definitions and the job code), ``stacks`` (the CDK app) and ``dogbreeds`` (the command line and
local mode) can all import it without importing each other the wrong way.

Some of these modules also ship, as they are, inside the code that runs on AWS: the job code bundle
carries ``instance_types``, ``monitoring_metrics`` and ``environment_variables`` (a model's
``code/`` carries the last one too) and the Lambda functions carry ``events``,
``environment_variables`` and (the deploy Lambda) ``deployment_metrics``. Those modules use the
standard library only, and this file imports nothing, so that importing one of them never pulls in
pydantic or the CDK.
"""
