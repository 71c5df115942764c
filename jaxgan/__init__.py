"""jaxgan: the original GAN (Goodfellow et al., 2014) in JAX/Flax, faithful to a PyTorch reference."""

__version__ = "0.1.0"
