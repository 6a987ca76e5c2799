"""`dunhuang_challenge`: the ICCV 2019 e-Heritage Dunhuang inpainting challenge, from its organisers' files.

600 paintings of Mogao Cave 7 (~500x800; 500 train, 100 test), each a triplet of ground truth, mask and
deteriorated image (the painting with the masked pixels black). The data comes from the organisers on request;
put it in a folder and pass it as the manual_dir. Naming variants (train_GT / train_mask / train_masked,
001.jpg / 001_mask.jpg / 001_masked.jpg, per-split gt/ and mask/ folders, JPG or PNG, any case) are read alike:
see layout.py. An example needs its ground truth and its mask; one without either is skipped and listed, a
missing deteriorated image is made from the two. Paintings are stored whole, as the challenge scores them.
"""

from __future__ import annotations

from muraljax.data.datasets import base, layout


class DunhuangChallenge(base.MuralBuilder):
  """Ground truth, mask and deteriorated image of every challenge painting, per split (train, test)."""

  HAS_DAMAGED_IMAGES = True
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Ask the e-Heritage 2019 Dunhuang challenge organisers for the data, unpack it into one folder (e.g. "
      "train_GT/, train_mask/, train_masked/, test_GT/, test_mask/, test_masked/) and pass that folder as "
      "--manual_dir to `python -m muraljax.data.prepare dunhuang_challenge`.")

  def _scan(self, root: str) -> layout.Layout:
    return layout.scan(root, need_masks=True, default_split=None)
