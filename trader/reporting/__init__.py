"""Reporting: metrics, charts, HTML/e-mail reports and failure alerts."""
