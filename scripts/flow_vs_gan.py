"""The flow-versus-GAN study at CPU scale (docs/flow_vs_gan.md): trains small SRResNet, SRGAN and CouplingFlowNet on
scikit-image's photographs and prints their comparison table; see srflow_plugin/tools/flow_vs_gan.py.

    python scripts/flow_vs_gan.py [--output flow_vs_gan_output] [--quick] [--fid]
"""
import sys

import srflow_plugin  # noqa: F401  (before basicsr: installs the torchvision shim)
from srflow_plugin.tools.flow_vs_gan import cli

if __name__ == '__main__':
    sys.exit(cli())
