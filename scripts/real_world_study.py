"""Real-world degradations, noise conditioning and safe sampling side by side at CPU scale (docs/real-world.md); see
srflow_plugin/tools/real_world_study.py.

    python scripts/real_world_study.py [--output real_world_output] [--iters 400] [--seeds 0 1] [--quick]
"""
import sys

import srflow_plugin  # noqa: F401  (before basicsr: installs the torchvision shim)
from srflow_plugin.tools.real_world_study import cli

if __name__ == '__main__':
    sys.exit(cli())
