"""Checking, before any work, that a tool will be able to write where it was told to."""

from __future__ import annotations

import os
from pathlib import Path


def unwritable_reason(folder: str | os.PathLike[str]) -> str | None:
  """Why files could not be created in `folder` (or in the folders that would be made for it), or None when they
  can: the nearest existing ancestor must be a folder this process may write to (a read-only mount is not)."""
  existing = Path(folder).absolute()
  while not existing.exists() and existing != existing.parent:
    existing = existing.parent
  if not existing.is_dir():
    return f"{existing} is a file, not a folder"
  if not os.access(existing, os.W_OK | os.X_OK):
    return f"{existing} is not writable"
  return None
