"""The one error type of weight porting."""

from __future__ import annotations


class PortError(ValueError):
  """A checkpoint cannot be read safely, or does not fit the target model; the message says what to do."""
