"""The store's one error of its own: a file that cannot be used."""

from __future__ import annotations

__all__ = ["DamagedResults"]


class DamagedResults(ValueError):
    """A results folder's file cannot be used; the message names it and the repair."""
