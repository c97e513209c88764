"""Training entry point: ``python -m srflow_plugin.train -opt options/train_SRFlow_x4.yml [--auto_resume]``.

Like Real-ESRGAN's train.py: import the plugin (registering its classes) and hand over to BasicSR's
training pipeline, with the current directory as root (experiments/ and tb_logger/ land there).
"""
import os
import sys
from os import path as osp

from basicsr import train as basicsr_train
from basicsr.utils import scandir
from basicsr.utils.misc import check_resume
from basicsr.utils.options import parse_options

from srflow_plugin.entry import checked_parse_options, command_line
from srflow_plugin.utils.allocator import keep_freed_memory
from srflow_plugin.utils.basicsr_compat import change_train_pipeline
from srflow_plugin.utils.checkpoint import read_checkpoint

DESCRIPTION = ('Train an SRFlow model (or any network of an option file) with BasicSR\'s training pipeline. '
               'Checkpoints, training states and logs go to experiments/<name>/ under the current directory; '
               '--auto_resume continues from the latest training state, on CPU or CUDA.')


def _latest_state(state_dir):
    """Path of the training state with the highest iteration in ``state_dir``, or None."""
    if not osp.isdir(state_dir):
        return None
    iters = [int(name[:-len('.state')]) for name in scandir(state_dir, suffix='.state', recursive=False)
             if name[:-len('.state')].isdigit()]
    return osp.join(state_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt):
    """Device-agnostic replacement of ``basicsr.train.load_resume_state``.

    BasicSR 1.4.2 maps the state onto ``torch.cuda.current_device()``, which fails on a machine without
    CUDA, and unpickles anything. Here the state is read with ``weights_only=True`` onto the CPU.
    ``--auto_resume`` picks the state with the highest iteration in ``experiments/<name>/training_states``.
    """
    if opt['auto_resume']:
        state_path = _latest_state(opt['path']['training_states'])
        if state_path is not None:
            opt['path']['resume_state'] = state_path
    resume_state_path = opt['path'].get('resume_state')
    if not resume_state_path:
        return None
    if not osp.isfile(resume_state_path):
        raise FileNotFoundError(f'path.resume_state: no training state at {resume_state_path}')
    # weights_only: tensors, numbers and a Counter only (utils/basicsr_compat.py), so a crafted state cannot run
    # code; on the CPU first, the optimizers move their state to the parameters' device when they load it
    resume_state = read_checkpoint(resume_state_path, 'Training state')
    check_resume(opt, resume_state['iter'])
    return resume_state


def train_pipeline(root_path):
    """BasicSR's training pipeline with the device-agnostic, exact resume (:mod:`srflow_plugin.utils.basicsr_compat`
    lists what is changed)."""
    change_train_pipeline(load_resume_state, checked_parse_options(parse_options, 'srflow-train'))
    basicsr_train.train_pipeline(root_path)


def main(argv=None):
    command_line('srflow-train', DESCRIPTION, training=True).parse_args(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()  # fewer page faults (srflow_plugin/utils/allocator.py)
    train_pipeline(osp.abspath(os.getcwd()))


if __name__ == '__main__':
    main()
