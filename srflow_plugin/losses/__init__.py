"""Losses of srflow-plugin; importing this package registers them in BasicSR's LOSS_REGISTRY."""
from .nll_loss import FlowNLLLoss

__all__ = ['FlowNLLLoss']
