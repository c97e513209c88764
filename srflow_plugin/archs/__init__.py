"""Architectures: importing this registers SRFlowNet, SRFlowRRDBNet and the flow-versus-GAN study's SRResNet and
CouplingFlowNet in BasicSR's ARCH_REGISTRY.

(``load_encoder_weights``, ``RELEASED_CONFIGS`` and ``convert_release_state_dict`` live in
:mod:`srflow_plugin.utils.checkpoint` and are only named here.)
"""
from srflow_plugin.utils.checkpoint import RELEASED_CONFIGS, convert_release_state_dict, load_encoder_weights

from .coupling_flow_arch import CouplingFlowNet, InvertibleBatchNorm
from .rrdb_arch import SRFlowRRDBNet
from .srflow_arch import SRFlowCondition, SRFlowNet
from .srresnet_arch import SRResNet

__all__ = [
    'SRFlowNet', 'SRFlowCondition', 'SRFlowRRDBNet', 'load_encoder_weights', 'RELEASED_CONFIGS',
    'convert_release_state_dict', 'CouplingFlowNet', 'InvertibleBatchNorm', 'SRResNet'
]
