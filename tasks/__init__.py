"""Prefect tasks: thin wrappers over trader/ functions."""
