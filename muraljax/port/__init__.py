"""Official PyTorch checkpoints -> muraljax params: safe reading, one generic converter, Orbax output.

In a notebook:

    from muraljax import port
    checkpoint = port.read_checkpoint("HINet-GoPro.pth")      # safetensors or torch.load(weights_only=True)
    params = port.convert(checkpoint.tensors, "hinet")         # architecture inferred from the tensors
    params = port.convert(state_dict, HINet(wf=32))            # or given as the target Flax module
    restored = HINet(...).apply({"params": params}, image)

From the shell, `python -m muraljax.port --model hinet --src HINet-GoPro.pth --out ported/hinet-gopro` writes an
Orbax checkpoint that `config.init_from.checkpoint` loads, and a JSON report of the mapping (see __main__.py).
"""

from muraljax.port.convert import Conversion, convert, convert_with_report
from muraljax.port.errors import PortError
from muraljax.port.families import BUNDLES, FAMILIES
from muraljax.port.reading import Checkpoint, read_checkpoint

__all__ = ["BUNDLES", "Checkpoint", "Conversion", "FAMILIES", "PortError", "convert", "convert_with_report",
           "read_checkpoint"]
