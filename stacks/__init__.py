"""CDK stacks (one per deployable concern), their constructs, and the settings model."""
