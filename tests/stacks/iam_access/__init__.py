"""Access checks: derive every AWS request the synthesised system makes and evaluate it against
the synthesised policies with @cloud-copilot/iam-simulate (AGPL-3.0-or-later, a test-only npm
devDependency run by simulate.js; nothing that ships includes it).

dogbreeds.cloud_assembly resolves the synthesised templates, policies.py collects identity and
resource policies, pipelines.py evaluates pipeline definitions for an example execution,
accesses.py derives the requests, code_calls.py lists the boto3 calls of our code, evaluator.py
runs the evaluator.
"""
