from .checkpoint import checkpoint_params, load_weights
from .registry import register

__all__ = ['checkpoint_params', 'load_weights', 'register']
