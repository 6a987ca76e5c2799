"""Errors raised by the data pipeline on bad input or configuration."""

from __future__ import annotations


class DataError(ValueError):
  """Bad data or data configuration; the message says what was wrong and what to do."""
