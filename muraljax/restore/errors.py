"""The one error the restoration tool raises for a user's mistake."""

from __future__ import annotations


class RestoreError(ValueError):
  """A bad image, mask, checkpoint or option; the message says what was wrong and what to do, in one sentence."""
