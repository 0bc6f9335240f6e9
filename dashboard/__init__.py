"""Readiness: release-readiness dashboard and gate engine for AI applications."""

__version__ = "0.1.0"
