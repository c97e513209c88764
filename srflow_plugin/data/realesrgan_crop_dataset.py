"""BasicSR's RealESRGANDataset with a configurable GT size (BasicSR fixes it at 400 x 400)."""
from basicsr.data.realesrgan_dataset import RealESRGANDataset
from basicsr.utils.registry import DATASET_REGISTRY

from srflow_plugin.utils import register

BASICSR_CROP_PAD_SIZE = 400  # hard-coded in RealESRGANDataset.__getitem__


@register(DATASET_REGISTRY)
class RealESRGANCropDataset(RealESRGANDataset):
    """RealESRGANDataset (GT images and the blur / sinc kernels of Real-ESRGAN's degradation) whose GT comes out
    ``crop_pad_size`` x ``crop_pad_size`` instead of 400 x 400, so that small-scale (CPU) training does not degrade
    400 x 400 images to keep a 64 x 64 crop.

    BasicSR pads an image smaller than 400 at the bottom/right (reflection) and crops a larger one at random to
    400; the top-left ``crop_pad_size`` square of its result is then what it would give with ``crop_pad_size``:
    the image padded to that size, or a random crop of it. The kernels are BasicSR's, unchanged.

    Args:
        opt (dict): RealESRGANDataset's options, plus ``crop_pad_size`` (int, <= 400, default 400).
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.crop_pad_size = int(opt.get('crop_pad_size', BASICSR_CROP_PAD_SIZE))
        if not 0 < self.crop_pad_size <= BASICSR_CROP_PAD_SIZE:
            raise ValueError(f"Option 'datasets.{opt.get('phase', 'train')}.crop_pad_size' = {self.crop_pad_size}: "
                             f'must be in 1..{BASICSR_CROP_PAD_SIZE}')

    def __getitem__(self, index):
        data = super().__getitem__(index)
        data['gt'] = data['gt'][:, :self.crop_pad_size, :self.crop_pad_size].contiguous()
        return data
