"""Architectures: importing this registers SRFlowNet and SRFlowRRDBNet in BasicSR's ARCH_REGISTRY."""
from .release_checkpoint import RELEASED_CONFIGS, convert_release_state_dict
from .rrdb_arch import SRFlowRRDBNet, load_encoder_weights
from .srflow_arch import SRFlowCondition, SRFlowNet

__all__ = [
    'SRFlowNet', 'SRFlowCondition', 'SRFlowRRDBNet', 'load_encoder_weights', 'RELEASED_CONFIGS',
    'convert_release_state_dict'
]
