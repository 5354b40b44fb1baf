"""`dogbreeds local pipeline status|list`: the executions of local mode, in the AWS command's table."""

from dogbreeds.pipeline_cli import register_local as register

__all__ = ["register"]
