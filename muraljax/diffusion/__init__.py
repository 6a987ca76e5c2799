"""Pixel-space diffusion: noise schedules and parameterisations, the training loss, and inpainting samplers.

Images inside diffusion live in [-1, 1] (`schedules.to_diffusion_range` maps the pipeline's [0, 1] there).
"""
