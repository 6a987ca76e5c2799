"""muraljax: mural restoration models (CAR, HINet, ARIN, DiffuMural) in JAX/Flax."""

__version__ = "0.1.0"
