"""The error a bad configuration raises: it names the key and the fix."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem, with the key that causes it and how to fix it."""
