"""Latent-space tools (encode / transfer / sweep); see srflow_plugin/tools/latent.py or --help."""
import sys
from os import path as osp

# run from a checkout: use this working tree's package, not an installed copy
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from srflow_plugin.tools.latent import main  # noqa: E402

if __name__ == '__main__':
    main()
