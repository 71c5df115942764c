"""PyTorch's optimisers as optax transformations, with PyTorch's defaults and update rules."""

from __future__ import annotations

from typing import Any

import optax


def adam(lr: Any, beta1: Any, beta2: Any) -> optax.GradientTransformation:
    """``torch.optim.Adam(lr, betas=(beta1, beta2))``, eps 1e-8: the same update rule as optax.adam."""
    return optax.adam(lr, beta1, beta2, eps=1e-8)


def rmsprop(lr: Any) -> optax.GradientTransformation:
    """``torch.optim.RMSprop(params, lr)`` with its defaults: v = 0.99 v + 0.01 g^2 from v = 0,
    p -= lr * g / (sqrt(v) + 1e-8) (eps outside the root), no momentum, not centered.
    optax's own defaults differ (decay 0.9, eps inside the root)."""
    return optax.rmsprop(lr, decay=0.99, eps=1e-8, initial_scale=0.0, eps_in_sqrt=False,
                         centered=False, momentum=None, bias_correction=False)
