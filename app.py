#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth -c env=NAME` (default dev) builds that environment's stacks."""

import sys

import aws_cdk as cdk

from stacks.environment_app import build_environment
from stacks.settings import SettingsError

app = cdk.App()
try:
    build_environment(app)
except SettingsError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
app.synth()
