"""The damage types a conservator names: the class condition DiffuMural embeds and `--damage-type` selects.

An example's label is an index into DAMAGE_TYPES. The generic inpainting masks (random walk, strokes, boxes) and
damage that comes with a dataset are 'unknown'.
"""

DAMAGE_TYPES = ("cracks", "flaking", "collapse", "fading", "unknown")
UNKNOWN_DAMAGE = DAMAGE_TYPES.index("unknown")
