"""The project's Lambda functions, each in its own folder beside the construct that deploys it:
``<name>/function.py`` (the construct) and ``<name>/code/`` (what runs in AWS, with a README).
``project_function.py`` holds what every function needs; ``function_code.py`` stages the asset."""
