"""TFDS builders of mural datasets, written as ArrayRecord and read without TensorFlow (see
muraljax.data.arrayrecord_source). Importing this package registers them with TFDS by name."""

from muraljax.data.datasets.dunhuang_challenge import DunhuangChallenge
from muraljax.data.datasets.mural_folder import MuralFolder, MuralFolderConfig

BUILDERS = {"dunhuang_challenge": DunhuangChallenge, "mural_folder": MuralFolder}
