#!/usr/bin/env python3
"""CDK entry point: `npx cdk synth -c env=NAME` (default dev) builds that environment's stacks."""

import sys

import aws_cdk as cdk

from contract.settings import SettingsError
from stacks.environment_app import build_environment

app = cdk.App()
try:
    build_environment(app)
except SettingsError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
app.synth()
