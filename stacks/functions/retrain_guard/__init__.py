"""The retrain guard Lambda: ``function.py`` deploys ``code/`` (see code/README.md)."""
