"""Execution: intents become orders; fills are confirmed, recorded and reconciled."""
