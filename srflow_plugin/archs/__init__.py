"""Architectures: importing this registers SRFlowNet, SRFlowRRDBNet and the flow-versus-GAN study's SRResNet and
CouplingFlowNet in BasicSR's ARCH_REGISTRY.

``release_checkpoint`` loads the SRFlow release's checkpoints into them (``load_encoder_weights``,
``RELEASED_CONFIGS``, ``convert_release_state_dict``).
"""
from .coupling_flow_arch import CouplingFlowNet, InvertibleBatchNorm
from .release_checkpoint import RELEASED_CONFIGS, convert_release_state_dict, load_encoder_weights
from .rrdb_arch import SRFlowRRDBNet
from .srflow_arch import SRFlowCondition, SRFlowNet
from .srresnet_arch import SRResNet

__all__ = [
    'SRFlowNet', 'SRFlowCondition', 'SRFlowRRDBNet', 'load_encoder_weights', 'RELEASED_CONFIGS',
    'convert_release_state_dict', 'CouplingFlowNet', 'InvertibleBatchNorm', 'SRResNet'
]
