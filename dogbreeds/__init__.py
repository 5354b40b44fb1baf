"""Operator CLI: local executor, local serving, traffic and ground-truth tools, dataset upload."""
