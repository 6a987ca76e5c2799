"""`mural_folder`: any folder of mural photographs, optionally with damage masks, tiled for training.

Photographs are found recursively (JPEG, PNG, BMP, TIFF, WebP). A mask is optional: a file named like its
photograph with a `_mask` suffix (`wall_3_mask.png`) or with the same name in a `mask/` / `masks/` folder (see
layout.py for every variant). Split folders (`train/`, `test/`, `val/`) are used when present; otherwise a fixed
`test_fraction` of the photographs (seeded, the same for the same folder) is held out as the test split.

Photographs larger than `tile_size` on a side are stored as overlapping tiles of tile_size x tile_size (see
muraljax/data/tiles.py), so a training crop decodes one tile instead of a whole 20-megapixel photograph and every
area of the collection is sampled alike. Configs: `tiles1024` (default) and `whole` (no tiling); another size
is `MuralFolder(config=MuralFolderConfig(name='tiles2048', tile_size=2048))`, which prepare makes from
--tile_size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from muraljax.data.datasets import base, layout

_HOLD_OUT_SEED = 0


@dataclasses.dataclass
class MuralFolderConfig(tfds.core.BuilderConfig):
  tile_size: int = 1024  # Side of the stored tiles; 0 stores every photograph whole.
  test_fraction: float = 0.1  # Share of the photographs held out as 'test' when the folder has no split folders.


def config_for(tile_size: int) -> MuralFolderConfig:
  """The config that stores tiles of `tile_size` (0: whole photographs)."""
  return MuralFolderConfig(name=f"tiles{tile_size}" if tile_size else "whole", tile_size=tile_size)


class MuralFolder(base.MuralBuilder):
  """Mural photographs (and their masks, where given) under the manual_dir, as train and test splits."""

  BUILDER_CONFIGS = [config_for(1024), config_for(0)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the folder of mural photographs as --manual_dir."

  def _tile_size(self) -> int:
    return self.builder_config.tile_size

  def _scan(self, root: str) -> layout.Layout:
    found = layout.scan(root, need_masks=False, default_split="train")
    photos = found.examples.get("train", [])
    held_out = round(len(photos) * self.builder_config.test_fraction)
    if found.split_folders or not held_out:
      return found
    test = set(np.random.default_rng(_HOLD_OUT_SEED).choice(len(photos), held_out, replace=False).tolist())
    found.examples = {"train": [p for i, p in enumerate(photos) if i not in test],
                      "test": [p for i, p in enumerate(photos) if i in test]}
    return found
