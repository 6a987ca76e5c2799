"""Where overlapping tiles start along one axis: shared by prepared datasets (stored tiles of large photographs)
and restoration (tiles a large photograph is restored in)."""

from __future__ import annotations

import math
from fractions import Fraction


def tile_starts(length: int, tile: int, overlap: int | Fraction) -> list[int]:
  """Starts of tiles of side `tile` covering [0, length): evenly spread over [0, length - tile], the last ending at
  `length`, neighbours overlapping by at least `overlap` (0 <= overlap < tile; a Fraction, e.g. tile/4, is exact).
  One tile starting at 0 when `tile` is 0 or covers the length."""
  if not tile or length <= tile:
    return [0]
  count = math.ceil(Fraction(length - overlap) / Fraction(tile - overlap))
  return [round(i * (length - tile) / (count - 1)) for i in range(count)]
