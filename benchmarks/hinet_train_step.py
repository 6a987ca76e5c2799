"""HINet train-step throughput, compile time and memory on this machine (synthetic batches).

  python benchmarks/hinet_train_step.py [--steps 5] [--cases smoke,paper_b1,paper_b2]

Prints a table and writes benchmarks/results/hinet_train_step.json.
"""

from __future__ import annotations

import common

CASES = {  # name: (config variant, global batch, patch side)
    "smoke": ("smoke", 8, 64),
    "paper_b1": ("paper", 1, 256),
    "paper_b2": ("paper", 2, 256),
}


def run_case(name: str, steps: int) -> dict[str, float]:
  variant, batch_size, side = CASES[name]
  return common.bench_train_step(common.load_config("hinet", variant), batch_size, side, steps)[0]


if __name__ == "__main__":
  common.main(description=__doc__.splitlines()[0], title="HINet train step", cases=list(CASES), run_case=run_case,
              result_name="hinet_train_step")
