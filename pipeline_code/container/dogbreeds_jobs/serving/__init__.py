"""What a model artifact carries to serve: the backbone registry, the artifact format, the handlers."""
