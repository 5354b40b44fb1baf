"""The deploy Lambda: ``function.py`` deploys ``code/`` (see code/README.md)."""
