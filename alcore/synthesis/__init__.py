"""Membership query synthesis: synthetic query points where real ones are scarce, and their
validation against the pool."""

from alcore.synthesis.validate import ValidationReport, validate

__all__ = ["ValidationReport", "validate"]
