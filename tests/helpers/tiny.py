"""The tiny SRFlowNet the tests sample from, its checkpoint, and small smooth test images."""
import os
from os import path as osp

import cv2
import numpy as np
import torch

from srflow_plugin.archs import SRFlowNet
from srflow_plugin.utils.checkpoint import save_srflow

TINY = dict(scale=4, num_feat=8, num_block=1, num_grow_ch=4, tap_blocks=[0], flow_steps=1, plain_steps=1,
            hidden_channels=8)


def tiny_net(seed=0):
    """The tiny SRFlowNet with its zero-initialised flow parameters (ActNorm, zero convs) drawn from N(0, 0.05^2),
    so that every layer acts and the flow is not the identity-like network of a fresh initialisation."""
    torch.manual_seed(seed)
    net = SRFlowNet(**TINY)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if not name.startswith('encoder.') and bool((param == 0).all()):
                param.normal_(0, 0.05, generator=generator)
    return net.eval()


def write_tiny_checkpoint(path, seed=0):
    """Saves :func:`tiny_net` with its ``network_g`` (as srflow-sample reads it) and returns the network."""
    net = tiny_net(seed)
    save_srflow(net, str(path), {'type': 'SRFlowNet', **TINY})
    return net


def write_image(path, h, w, seed=0):
    """A smooth random colour image (uint8 BGR) written to path."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (3, 3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    cv2.imwrite(str(path), img)
    return img
