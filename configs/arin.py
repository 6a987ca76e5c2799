"""ARIN (CAR followed by HINet) for blind mural inpainting. `--config configs/arin.py[:options]`.

Options, comma-separated, at most one of each group (defaults first):
  paper | smoke       paper: the official CAR nets (configs/car.py:x4) and the paper's HINet (configs/hinet.py),
                      128 px patches. smoke: the CAR and HINet smoke miniatures on 48 px patches, 200 steps.
  car | hinet | joint the phase (`arin.phase`, see muraljax/tasks/arin.py) with its trainer settings. Paper: 'car'
                      fine-tunes CAR as ARIN did (batch 10, 6k steps, Adam 1e-4 -> 1e-6); 'hinet' and 'joint'
                      train as HINet (batch 4, 100k steps, Adam 2e-4 cosine to 1e-7, gradient clip 0.01).
                      Smoke trains every phase like the CAR smoke run. Default: 'car' for paper, 'joint' for
                      smoke (so one short run trains the whole chain).
  dr | db             the HINet variant: Half Instance Norm at every level ("DR", deraining) or at levels 3-4
                      ("DB", deblurring; Adam beta2 0.99), as configs/hinet.py's paper / db.
  x4 | x2             CAR's scale.

The paper's recipe, two runs (the second starts from the first's CAR):
  --config configs/arin.py:car --workdir runs/arin-car
  --config configs/arin.py:hinet --workdir runs/arin --config.init_from.checkpoint=runs/arin-car
Setting `--config.arin.phase` alone switches the phase but keeps the trainer settings of the chosen options.
"""

import pathlib

import ml_collections

from muraljax import config as config_lib

_OPTION_GROUPS = (("paper", "smoke"), ("car", "hinet", "joint"), ("dr", "db"), ("x4", "x2"))


def _sibling_config(name: str, variant: str) -> ml_collections.ConfigDict:
  """configs/<name>.py:<variant>, whose documented model, loss, data and trainer sections ARIN reuses."""
  return config_lib.load(f"{pathlib.Path(__file__).with_name(name + '.py')}:{variant}")


def _options(arg: str | None) -> list[str]:
  """One option per group: the one named in `arg`, else the group's default (its first)."""
  tokens = [t.strip() for t in (arg or "").split(",") if t.strip()]
  unknown = [t for t in tokens if not any(t in group for group in _OPTION_GROUPS)]
  if unknown:
    raise ValueError(f"Unknown arin config options {unknown}; choose from {[list(g) for g in _OPTION_GROUPS]}.")
  chosen = []
  for group in _OPTION_GROUPS:
    named = [t for t in tokens if t in group]
    if len(named) > 1:
      raise ValueError(f"arin config options {named} exclude each other; pick one of them.")
    chosen.append(named[0] if named else None)
  return chosen


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  size, phase, hinet_variant, scale = _options(arg)
  smoke = size == "smoke"
  phase = phase or ("joint" if smoke else "car")
  car = _sibling_config("car", "smoke" if smoke else "x4")
  hinet = _sibling_config("hinet", "smoke" if smoke else "db" if hinet_variant == "db" else "paper")
  c = config_lib.base_config("arin")

  c.arin = ml_collections.ConfigDict()
  c.arin.phase = phase  # What trains: 'car', 'hinet' (on the frozen CAR's outputs) or 'joint'.

  # The CAR and HINet model and loss sections, documented in configs/car.py and configs/hinet.py.
  c.model = ml_collections.ConfigDict({"car": car.model, "hinet": hinet.model})
  c.model.car.scale = 2 if scale == "x2" else 4
  if smoke and hinet_variant == "db":
    c.model.hinet.hin_levels = (3, 4)
  c.loss = ml_collections.ConfigDict({"car": car.loss, "hinet": hinet.loss})
  # Phase 'joint' minimises car_weight * CAR loss + hinet_weight * HINet loss. Their scales differ: the CAR
  # loss is mostly an L1 error (~0.05), the HINet loss -PSNR in dB over two stages (~ -30 to -60), so HINet's
  # gradient dominates what CAR learns unless car_weight is raised.
  c.loss.car_weight = 1.0
  c.loss.hinet_weight = 1.0

  c.data = car.data
  trainer = car if smoke or phase == "car" else hinet
  c.train, c.optimizer = trainer.train, trainer.optimizer
  if trainer is hinet:
    c.train.batch_size = 4
    c.train.num_steps = 100_000
  return c
