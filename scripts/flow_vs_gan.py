"""The flow-versus-GAN study at CPU scale (docs/flow_vs_gan.md): trains small SRResNet, SRGAN and CouplingFlowNet on
scikit-image's photographs and prints their comparison table; see srflow_plugin/tools/flow_vs_gan.py.

    python scripts/flow_vs_gan.py [--output flow_vs_gan_output] [--quick]
"""
import sys
from os import path as osp

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # this checkout's package, not an installed copy
import srflow_plugin  # noqa: E402,F401  (before basicsr: installs the torchvision shim)
from srflow_plugin.tools.flow_vs_gan import cli  # noqa: E402

if __name__ == '__main__':
    sys.exit(cli())
