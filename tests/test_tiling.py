"""Tiled decoding (srflow_plugin.inference.tiling) and the picture grid layout (srflow_plugin.inference.grid)."""
import numpy as np
import pytest
import torch

from srflow_plugin.archs import RELEASED_CONFIGS, SRFlowNet
from srflow_plugin.inference.grid import GAP, label_height, make_grid, tile_origin
from srflow_plugin.inference.tiling import (decode_tiled, measure_receptive_radius, needed_overlap, receptive_radius,
                                            tile_boxes)
from helpers.devices import to_device
from helpers.tiny import tiny_net

LQ_H, LQ_W = 96, 91  # odd width: the last column of tiles is reflect-padded like the whole image
TILE = 32


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def case():
    net = tiny_net()
    lq = torch.rand(1, 3, LQ_H, LQ_W, generator=torch.Generator().manual_seed(0))
    latents = net.draw_latents(LQ_H, LQ_W, 0.9, torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net.decode(lq, latents=latents)
    return net, lq, latents, whole


def test_tile_cores_cover_the_image_once_and_contexts_add_the_overlap_inside_the_image():
    tiles = tile_boxes(50, 37, 16, 6)
    cover = np.zeros((50, 37), int)
    for t in tiles:
        y0, y1, x0, x1 = t.core
        cover[y0:y1, x0:x1] += 1
        assert t.context == (max(0, y0 - 6), min(50, y1 + 6), max(0, x0 - 6), min(37, x1 + 6))
        assert t.context[0] % 2 == 0 and t.context[2] % 2 == 0
    assert len(tiles) == 4 * 3 and (cover == 1).all()


@pytest.mark.parametrize('lq_h, lq_w, tile, last_core, last_context', [
    (5, 7, 4, (4, 5, 4, 7), (2, 5, 4, 7)),  # 5 = 1 mod 4: a 1-px last row of tiles; 7 = 3 mod 4
    (9, 9, 2, (8, 9, 8, 9), (6, 9, 6, 9)),
])
def test_a_one_pixel_last_core_without_overlap_gets_an_even_context_origin(lq_h, lq_w, tile, last_core,
                                                                           last_context):
    # the 1-px core's context steps back to the even origin 2 or 3 px before its end (3 would be odd)
    tiles = tile_boxes(lq_h, lq_w, tile, 0)
    cover = np.zeros((lq_h, lq_w), int)
    for t in tiles:
        (y0, y1, x0, x1), (iy0, iy1, ix0, ix1) = t.core, t.context
        cover[y0:y1, x0:x1] += 1
        assert iy0 % 2 == 0 and ix0 % 2 == 0
        assert iy0 <= y0 < y1 <= iy1 and ix0 <= x0 < x1 <= ix1
        assert iy1 - iy0 >= 2 and ix1 - ix0 >= 2
    assert (cover == 1).all()
    assert tiles[-1].core == last_core and tiles[-1].context == last_context


@pytest.mark.parametrize('lq_h, lq_w, tile', [(5, 7, 4), (9, 9, 2)])
def test_decoding_sides_of_1_mod_tile_without_overlap_fills_every_pixel_and_with_overlap_is_exact(
        lq_h, lq_w, tile):
    net = tiny_net()
    lq = torch.rand(1, 3, lq_h, lq_w, generator=torch.Generator().manual_seed(0))
    latents = net.draw_latents(lq_h, lq_w, 0.9, torch.Generator().manual_seed(1))
    # NaN-filled outputs show any pixel that no tile core wrote
    zeros = torch.zeros
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, 'zeros', lambda *size, **kw: zeros(*size, **kw).fill_(float('nan')))
        calls = []
        no_overlap = decode_tiled(net, lq, [latents], tile, 0, progress=lambda: calls.append(1))[0]
    assert no_overlap.shape == (1, 3, 4 * lq_h, 4 * lq_w)
    assert not no_overlap.isnan().any()
    assert len(calls) == len(tile_boxes(lq_h, lq_w, tile, 0))
    with torch.no_grad():
        whole = net.decode(lq, latents=latents)
    exact = decode_tiled(net, lq, [latents], tile, needed_overlap(net))[0]
    assert (exact - whole).abs().max().item() <= 1e-3


def test_odd_tile_or_overlap_is_an_error_naming_the_option():
    with pytest.raises(ValueError, match='tile must be an even'):
        tile_boxes(64, 64, 33, 8)
    with pytest.raises(ValueError, match='tile_overlap must be an even'):
        tile_boxes(64, 64, 32, 5)


def test_the_receptive_radius_bound_of_the_tiny_network_is_reached_within_3_pixels():
    net = tiny_net()
    assert receptive_radius(net) == 28 and needed_overlap(net) == 28
    assert receptive_radius(dict(scale=4, num_block=1, flow_steps=1)) == 28
    measured = measure_receptive_radius(net, 64, 64, torch.Generator().manual_seed(0))
    assert receptive_radius(net) - 3 <= measured <= receptive_radius(net)


def test_the_receptive_radius_bound_holds_at_scale_2_with_two_flow_steps():
    torch.manual_seed(0)
    net = SRFlowNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4, tap_blocks=(0, ), flow_steps=2, plain_steps=1,
                    hidden_channels=8).eval()
    with torch.no_grad():
        for name, param in net.named_parameters():
            if not name.startswith('encoder.') and bool((param == 0).all()):
                param.normal_(0, 0.05)
    assert receptive_radius(net) == 32
    assert 29 <= measure_receptive_radius(net, 64, 64, torch.Generator().manual_seed(0)) <= 32


def test_the_released_configurations_need_hundreds_of_pixels_of_overlap_for_exact_tiles():
    # 23 RRDB blocks alone reach 1 + 23 * 15 + 1 LR pixels
    assert {name: needed_overlap(cfg) for name, cfg in RELEASED_CONFIGS.items()} == {
        'SRFlow_DF2K_4X': 464, 'SRFlow_DF2K_8X': 472, 'SRFlow_CelebA_8X': 246}


def test_tiles_with_the_needed_overlap_reproduce_untiled_decoding(case, device):
    net, lq, latents, whole = case
    net = to_device(device, net)[0]
    tiled = decode_tiled(net, lq, [latents], TILE, needed_overlap(net))[0].cpu()  # tiles go to the net's device
    assert tiled.shape == whole.shape == (1, 3, 4 * LQ_H, 4 * LQ_W)
    assert (tiled - whole).abs().max().item() <= 1e-3


def test_tiles_without_overlap_do_not_reproduce_untiled_decoding(case):
    net, lq, latents, whole = case
    tiled = decode_tiled(net, lq, [latents], TILE, 0)[0]
    assert (tiled - whole).abs().max().item() > 0.05


def test_the_network_only_ever_sees_one_tile_with_its_context(case):
    net, lq, latents, _ = case
    shapes = []
    condition = net.condition
    net.condition = lambda x: shapes.append(tuple(x.shape)) or condition(x)
    try:
        outputs = decode_tiled(net, lq, [latents, latents], TILE, 8)
    finally:
        del net.condition
    assert len(outputs) == 2 and torch.equal(outputs[0], outputs[1])
    assert len(shapes) == 3 * 3  # one condition per tile, shared by both outputs
    assert max(s[2] for s in shapes) == TILE + 2 * 8 and max(s[3] for s in shapes) == TILE + 2 * 8
    assert {s[:2] for s in shapes} == {(1, 3)}


def test_latents_for_another_image_size_are_an_error_naming_the_shapes(case):
    net, lq, latents, _ = case
    with pytest.raises(ValueError, match=r'do not fit the LR image of size 96x91'):
        decode_tiled(net, lq, [net.draw_latents(20, 20, 1.0)], TILE, 8)


def test_grid_layout_puts_each_picture_below_its_caption_band():
    a, b, c = (np.full((20, 30, 3), v, np.uint8) for v in (10, 20, 30))
    grid = make_grid([[('a', a), ('b', b)], [('c', c)]])
    label_h = label_height(30)
    assert grid.shape == (GAP + 2 * (label_h + 20 + GAP), GAP + 2 * (30 + GAP), 3)
    for (row, col), img in {(0, 0): a, (0, 1): b, (1, 0): c}.items():
        y, x = tile_origin(row, col, 20, 30)
        assert np.array_equal(grid[y:y + 20, x:x + 30], img)
    y, x = tile_origin(1, 1, 20, 30)
    assert (grid[y:y + 20, x:x + 30] == 255).all()  # the missing cell stays background
    assert (grid[GAP:GAP + label_h, GAP:GAP + 30] < 255).any()  # a caption was drawn
