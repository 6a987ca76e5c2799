"""The shipped muraljax models against classical inpainting, on held-out real murals with box and stroke holes.

The validation images are the files a training run over the same folder holds out (the folder source's seeded
choice of `--holdout` files, muraljax.data.pipeline.folder_split), so no painting is on both sides. Each gets a
boxes and a strokes mask of its own (muraljax.evaluate.anchors). Prints one table per mask group (all, boxes,
strokes) and writes benchmarks/results/inpainting_quality.json.

  python benchmarks/inpainting_quality.py --folder DUNHUANG/train/gt --holdout 50       # every shipped model
  python benchmarks/inpainting_quality.py --folder DIR --holdout 50 --models inpaint-small,runs/mine

Needs the anchors extra (OpenCV): pip install -e '.[anchors]'.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import ml_collections

import muraljax.restore as R
from muraljax.data import pipeline
from muraljax.evaluate import anchors
from muraljax.restore import shipped

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "inpainting_quality.json")


def held_out_images(folder: str, holdout: int, crop: int):
  """The `holdout` files a training run with data.folder=`folder`, data.eval_images=`holdout` never sees."""
  data = pipeline.default_config()
  data.source, data.folder, data.eval_images = "folder", folder, holdout
  data.patch_size = data.eval_size = crop
  return pipeline.folder_split(ml_collections.ConfigDict(data))[1]


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--folder", required=True, help="the image folder the models were trained on")
  p.add_argument("--holdout", type=int, default=50, help="its held-out images (the run's data.eval_images)")
  p.add_argument("--crop", type=int, default=256, help="side of the centre crops")
  p.add_argument("--models", default=",".join(shipped.names()), help="shipped model names or run paths, comma-"
                 "separated (default: every shipped model)")
  p.add_argument("--seed", type=int, default=0, help="seeds the masks")
  p.add_argument("--max_images", type=int, default=0, help="score only the first N held-out images (0 = all)")
  p.add_argument("--out", default=_RESULTS, help="the JSON file to write")
  args = p.parse_args(argv)

  images = held_out_images(args.folder, args.holdout, args.crop)
  if args.max_images:
    images = images.subset(range(min(args.max_images, len(images))))
  cases = anchors.validation_cases(images, args.crop, args.seed)
  methods = anchors.classical_anchors()
  for name in filter(None, args.models.split(",")):
    methods[f"muraljax {name}"] = R.load(name).restore
  results = anchors.compare(methods, cases, log=lambda message: print(message, file=sys.stderr, flush=True))
  for group in ("all", *anchors.MASK_KINDS):
    print(f"\n{group}: {sum(c.kind == group or group == 'all' for c in cases)} cases of {args.crop} px, "
          f"{args.holdout} held-out images of {args.folder}\n{anchors.markdown(results, group)}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as file:
    json.dump({"folder": os.path.basename(os.path.normpath(args.folder)), "holdout": args.holdout, "crop": args.crop,
               "seed": args.seed, "cases": len(cases), "results": results}, file, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
