"""The one error the restoration tool raises for a user's mistake."""

from __future__ import annotations

import sys
from collections.abc import Callable


class RestoreError(ValueError):
  """A bad image, mask, checkpoint or option; the message says what was wrong and what to do, in one sentence."""


def exit_status(command: Callable[[], object]) -> int:
  """Runs a command-line tool's body: exit status 0 when it finishes, 2 after printing 'Error: <sentence>' on stderr
  when it raises RestoreError."""
  try:
    command()
  except RestoreError as error:
    print(f"Error: {error}", file=sys.stderr)
    return 2
  return 0
