"""EventBridge event sources and detail types: what the project's rules match and its functions handle.

Written by AWS (SageMaker and CloudWatch put these events on the default bus); read by the stacks'
rules (event patterns), by the Lambda functions that check an event before acting on it, and by local
mode, which builds the same events to run the alarms' rules and the retrain guard. Standard library
only: the Lambda assets carry this module.
"""

from __future__ import annotations

SAGEMAKER_SOURCE = "aws.sagemaker"
CLOUDWATCH_SOURCE = "aws.cloudwatch"

# SageMaker (source aws.sagemaker)
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"  # approval decisions -> deploy Lambda
ENDPOINT_STATE_CHANGE = "SageMaker Endpoint State Change"  # InService -> deploy Lambda; Failed -> alerts
ENDPOINT_DEPLOYMENT_STATE_CHANGE = "SageMaker Endpoint Deployment State Change"  # blue/green -> alerts
PIPELINE_EXECUTION_STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"  # -> alerts

# CloudWatch (source aws.cloudwatch)
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"  # drift/quality alarms -> retrain guard
