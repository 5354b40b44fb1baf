"""Logical-unit constructs that the stacks are composed of."""
