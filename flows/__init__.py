"""Prefect flows: trading, order placement, snapshots and reports."""
