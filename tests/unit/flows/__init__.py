"""Unit tests of the Prefect layer (flows/, tasks/, deployments/)."""
