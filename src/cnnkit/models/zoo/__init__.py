"""Architectures registered by name; :data:`cnnkit.models.registry.ZOO_MODULES` lists them."""
