"""Session-wide test environment."""

import os

# jsii prints a large Node end-of-life banner on every app; it hides real output in test logs.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
