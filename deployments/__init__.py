"""Deployment helpers: work pool and block setup for prefect.yaml."""
