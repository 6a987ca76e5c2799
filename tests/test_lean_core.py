"""Training, evaluation and restoration import no TensorFlow, tensorflow-datasets or clu: the core runs on an
accelerator image that has only JAX, flax, optax, orbax, grain, ml-collections and the small packages.

TensorFlow is installed in the test environment (the `datasets` extra), so an import of it anywhere on these paths
would show up in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

_SCRIPT = """
import json, pathlib, sys, numpy as np
from conftest import load_config
from muraljax.evaluate import protocol
from muraljax.train import loop
import muraljax.restore as R

config = load_config("hinet", "smoke")
config.model.wf, config.model.depth = 4, 2
config.data.update(image_size=48, patch_size=32, eval_size=32, eval_images=2)
config.train.update(num_steps=2, log_every=1, eval_every=2, checkpoint_every=2)
workdir = sys.argv[1] + "/run"
loop.run(config, workdir)

cases, _ = protocol.load_cases(protocol.run_config(pathlib.Path(workdir) / "checkpoints" / "2").data, max_images=2)
scores = protocol.evaluate(protocol.load_predict(config, workdir), cases, ("clean",))
assert np.isfinite(scores["per_image"][0]["clean"]["lpips"])

image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
mask = np.zeros((40, 56), bool)
mask[10:20, 10:30] = True
restored = R.load().restore(image, mask)
assert restored.shape == image.shape and (restored[~mask] == image[~mask]).all()

heavy = ("tensorflow", "tensorflow_datasets", "clu")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def test_train_evaluate_and_restore_import_no_tensorflow(tmp_path):
  finished = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=REPO / "tests", capture_output=True,
                            text=True, timeout=600)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert json.loads(finished.stdout.strip().splitlines()[-1]) == []
  assert (tmp_path / "run" / "metrics.jsonl").exists()
