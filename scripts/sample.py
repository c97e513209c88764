"""Sample super-resolutions with a trained SRFlowNet; see srflow_plugin/tools/sample.py or --help."""
import sys
from os import path as osp

# run from a checkout: use this working tree's package, not an installed copy
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from srflow_plugin.tools.sample import main  # noqa: E402

if __name__ == '__main__':
    main()
