"""Finding the images of a mural dataset on disk: which file is whose ground truth, mask or deteriorated image.

A file's place comes from its path relative to the root, read as words (separated by `_`, `-`, `.` or spaces)
compared in lower case:

* split: the first directory word that is a split name (`train`, `test`, `val`, `validation`), e.g.
  `train_GT/`, `test/`, `Dunhuang/train/`;
* role: a directory word naming one (`gt`, `ground truth`, `clean`, `image(s)`, `input`, `original` = the
  intact painting; `mask(s)`; `masked`, `damaged`, `deteriorated`, `degraded`, `corrupted` = the deteriorated
  image; `edge(s)` = line drawings, not used), else the last word of the file name (`001_mask.jpg`,
  `001_masked.png`), else the intact painting. `input` means the intact painting because the released Dunhuang
  examples keep the paintings in `input/` with the masks beside them in `mask/`;
* key: the file name without extension and role word, prefixed by the directories that are not split or role
  folders (`cave7/001`); keys match case-insensitively, so `001.JPG`, `001_mask.png` and `001_Masked.jpg` are one
  example.

So the organisers' layout (`train_GT/001.jpg`, `train_mask/001_mask.jpg`, `train_masked/001_masked.jpg`),
per-split folders (`train/gt/001.png`, `train/mask/001.png`) and flat folders (`train/001.jpg`,
`train/001_mask.jpg`, `train/001_masked.jpg`) are all read the same way.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re

from muraljax.data.errors import DataError
from muraljax.data.folder import EXTENSIONS

SPLITS = {"train": "train", "test": "test", "val": "validation", "validation": "validation"}
IMAGE, MASK, DAMAGED, EDGE = "image", "mask", "damaged", "edge"
_ROLE_WORDS = {
    **dict.fromkeys(("gt", "ground", "truth", "groundtruth", "clean", "image", "images", "input", "original"),
                    IMAGE),
    **dict.fromkeys(("mask", "masks"), MASK),
    **dict.fromkeys(("masked", "damaged", "deteriorated", "degraded", "corrupted"), DAMAGED),
    **dict.fromkeys(("edge", "edges"), EDGE),
}
_WORD = re.compile(r"[^_\-\s.]+")


@dataclasses.dataclass
class Example:
  """The files of one example; `image` is the intact painting (ground truth), the others may be None."""

  key: str
  image: str | None = None
  mask: str | None = None
  damaged: str | None = None


@dataclasses.dataclass
class Layout:
  """Complete examples per split, and what was left out: `problems[split][reason]` lists keys or paths.
  `split_folders` says whether any file lay in a split folder (rather than in the default split)."""

  examples: dict[str, list[Example]]
  problems: dict[str, dict[str, list[str]]]
  split_folders: bool


def scan(root: str, *, need_masks: bool, default_split: str | None) -> Layout:
  """Groups the images under `root` into examples per split (see the module docstring).

  Args:
    root: the dataset directory.
    need_masks: whether an example needs a mask (the challenge's triplets) or may go without (photographs).
    default_split: the split of files under no split folder; None lists them as problems instead.

  Returns:
    The complete examples of every split that has files, sorted by key, and per split the examples left out
    ('no ground truth', 'no mask'), the duplicate files ignored and the files outside any split.
  """
  if not os.path.isdir(root):
    raise DataError(f"{root!r} is not a directory; pass the folder that holds the dataset's images.")
  found: dict[str, dict[str, Example]] = collections.defaultdict(dict)
  problems: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
  split_folders = False
  for path in _image_files(root):
    relative = os.path.relpath(path, root)
    split, role, key = _place(relative)
    split_folders |= split is not None
    split = split or default_split
    if split is None:
      problems["(none)"]["not in a train/test folder"].append(relative)
      continue
    if role == EDGE:
      continue
    example = found[split].setdefault(key.lower(), Example(key))
    if getattr(example, role) is not None:
      problems[split]["duplicate file ignored"].append(relative)
      continue
    setattr(example, role, path)
  examples = {}
  for split, by_key in sorted(found.items()):
    complete = []
    for example in sorted(by_key.values(), key=lambda e: e.key.lower()):
      if example.image is None:
        problems[split]["no ground truth"].append(example.key)
      elif need_masks and example.mask is None:
        problems[split]["no mask"].append(example.key)
      else:
        complete.append(example)
    examples[split] = complete
  return Layout(examples, {split: dict(reasons) for split, reasons in problems.items()}, split_folders)


def _image_files(root: str) -> list[str]:
  paths = []
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
    paths += [os.path.join(directory, name) for name in files
              if not name.startswith(".") and name.lower().endswith(EXTENSIONS)]
  return sorted(paths)


def _place(relative: str) -> tuple[str | None, str, str]:
  """(split or None, role, key) of a file from its path relative to the dataset root."""
  *directories, filename = relative.split(os.sep)
  split, role, prefix = None, None, []
  for directory in directories:
    words = [word.lower() for word in _WORD.findall(directory)]
    named_split = next((SPLITS[word] for word in words if word in SPLITS), None)
    named_role = next((_ROLE_WORDS[word] for word in words if word in _ROLE_WORDS), None)
    split = split or named_split
    role = named_role or role
    if named_split is None and named_role is None:
      prefix.append(directory)
  stem = os.path.splitext(filename)[0]
  words = _WORD.findall(stem)
  suffix_role = _ROLE_WORDS.get(words[-1].lower()) if len(words) > 1 else None
  if suffix_role is not None:
    stem = stem[:stem.lower().rindex(words[-1].lower())].rstrip("_- .")
  return split, role or suffix_role or IMAGE, "/".join([*prefix, stem])
