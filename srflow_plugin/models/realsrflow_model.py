"""RealSRFlowModel: SRFlowModel trained on real-world degradations synthesised on the device (Real-ESRGAN).

The LR batch is made from the GT crops by BasicSR's own second-order degradation pipeline: the dataset
(``type: RealESRGANDataset``) draws the blur and sinc kernels, and :meth:`feed_data` is BasicSR's
``RealESRNetModel.feed_data`` (blur, random resize, Gaussian/Poisson noise, DiffJPEG, twice; final sinc filter;
USM-sharpened GT; paired random crop; the training pair pool), called as it is on this model. The option keys are
Real-ESRGAN's (``options/train_realesrnet_x4plus.yml``), checked and defaulted by
:mod:`srflow_plugin.options_schema`. Validation and testing read the dataset's own LR images.
"""
import torch
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.registry import MODEL_REGISTRY

from srflow_plugin.options_schema import REAL_DEGRADATION, OptionError, get_option
from srflow_plugin.utils import register
from .srflow_model import SRFlowModel


class ContiguousDiffJPEG(DiffJPEG):
    """BasicSR's DiffJPEG with a contiguous output. DiffJPEG returns a permuted view; from torch 2.x on, F.pad keeps
    that layout, and BasicSR's ``filter2D`` (the second blur) then fails on ``.view`` with per-image kernels. Same
    values."""

    def forward(self, x, quality):
        return super().forward(x, quality).contiguous()


@register(MODEL_REGISTRY)
class RealSRFlowModel(SRFlowModel):
    """SRFlowModel whose training LR images are synthesised from the GT by Real-ESRGAN's degradation model.

    Works for every flow SRFlowModel trains. BasicSR's ``RealESRNetModel`` places its JPEG simulator and its
    training pair pool with ``.cuda()``; here they are built on the model's device (CPU or CUDA) and BasicSR's
    methods then run unchanged (the JPEG simulator's output made contiguous, :class:`ContiguousDiffJPEG`).
    """

    def __init__(self, opt):
        for key, option in REAL_DEGRADATION.items():  # RealESRNetModel.feed_data indexes the options directly
            if opt.get(key) is None:
                opt[key] = option.default
        if opt['gt_size'] is None:
            raise OptionError("Option 'gt_size' (the GT crop after the degradation, top level) is required by "
                              'RealSRFlowModel.')
        if opt['gt_size'] % (2 * opt['scale']):
            raise OptionError(f"Option 'gt_size' = {opt['gt_size']}: must be a multiple of 2 * scale = "
                              f"{2 * opt['scale']} (the LR crop must be even for the flow).")
        super().__init__(opt)
        self.jpeger = ContiguousDiffJPEG(differentiable=False).to(self.device)
        self.usm_sharpener = USMSharp().to(self.device)
        self.queue_size = int(get_option(opt, '', 'queue_size'))

    def synthesises(self, data):
        """Whether this batch's LR is synthesised (training, with the dataset's kernels) or read (validation)."""
        return self.is_train and self.opt['high_order_degradation'] and 'kernel1' in data

    def feed_data(self, data):
        if self.synthesises(data):
            RealESRNetModel.feed_data(self, data)
        else:
            super().feed_data(data)

    @torch.no_grad()
    def _dequeue_and_enqueue(self):
        """BasicSR's training pair pool, its buffers allocated on this model's device (``queue_size: 0``: off)."""
        if self.queue_size == 0:
            return
        if not hasattr(self, 'queue_lr'):
            batch = self.lq.shape[0]
            if self.queue_size % batch:
                raise OptionError(f"Option 'queue_size' = {self.queue_size}: must be a multiple of the batch size "
                                  f'{batch} (or 0).')
            self.queue_lr = self.lq.new_zeros((self.queue_size, ) + tuple(self.lq.shape[1:]))
            self.queue_gt = self.gt.new_zeros((self.queue_size, ) + tuple(self.gt.shape[1:]))
            self.queue_ptr = 0
        RealESRNetModel._dequeue_and_enqueue(self)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        # validation reads the dataset's LR images, as RealESRNetModel's does
        is_train, self.is_train = self.is_train, False
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            self.is_train = is_train
