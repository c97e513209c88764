"""Models of srflow-plugin; importing this package registers SRFlowModel in BasicSR's MODEL_REGISTRY."""
from .srflow_model import SRFlowModel

__all__ = ['SRFlowModel']
