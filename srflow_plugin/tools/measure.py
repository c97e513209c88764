"""Measure SR results: PSNR, SSIM, LPIPS, LR-PSNR, the NTIRE diversity score, FID and KID.

    srflow-measure --sr results/SRFlow_x4 --gt datasets/DIV2K/DIV2K_valid_HR \\
        --lr datasets/DIV2K/DIV2K_valid_LR_bicubic/X4 [--temperature 0.9] [--crop_border 0] [--no_lpips] [--fid] [--kid]

Writes ``metrics.csv`` and ``metrics.md`` into --sr (or --csv / --md) and prints the table. How SR files are paired
with GT and LR images, which temperature they carry and which files are left out: :mod:`srflow_plugin.inference.
measuring`, which does the measuring (:func:`~srflow_plugin.inference.measuring.measure`).
"""
import argparse
import sys
from os import path as osp

from srflow_plugin.inference.measuring import format_markdown, measure, write_csv
from srflow_plugin.metrics import get_lpips_model
from srflow_plugin.tools.command import HelpFormatter, add_device_argument, console_command, resolve_device
from srflow_plugin.utils.image import is_image_file
from srflow_plugin.utils.paths import check_outputs
from srflow_plugin.utils.table import write_text

__all__ = ['main', 'cli']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='srflow-measure', formatter_class=HelpFormatter,
        description='PSNR/SSIM (RGB and Y), LPIPS, LR-PSNR (LR input and NTIRE) and NTIRE diversity of SR results.',
        epilog='SR files belong to the GT image whose stem they equal or start with followed by "_" '
        '(0801.png, 0801_sample03.png); all SR files of one GT image are its samples. Files named '
        '<image>_t<T>_s<k>.png carry the temperature T: the samples of one image must share one, else pass '
        '--temperature.')
    parser.add_argument('--sr', required=True, help='Folder of SR images (searched recursively).')
    parser.add_argument('--gt', required=True, help='Folder of GT images.')
    parser.add_argument('--lr', default=None, help='Folder of LR inputs (<stem>.png or <stem>x<scale>.png).')
    parser.add_argument('--scale', type=int, default=None, help='Scale factor; required without --lr.')
    parser.add_argument('--temperature', type=float, default=None, help='Measure only the SR files named '
                        '<image>_t<T>_s<k> (srflow-sample, validation) with this T; needed when --sr holds several.')
    parser.add_argument('--crop_border', type=int, default=0, help='Border excluded from PSNR/SSIM/LPIPS')
    parser.add_argument('--no_lpips', action='store_true', help='Skip LPIPS and diversity (no AlexNet weights).')
    parser.add_argument('--fid', action='store_true', help='Also FID over all samples (needs the Inception weights).')
    add_device_argument(parser, 'LPIPS, FID and KID')
    parser.add_argument('--lr_consistency', type=int, default=0, metavar='N',
                        help='Also measure every sample after N back-projection steps onto its LR image (needs --lr; '
                        'e.g. 2). Default: 0 (off)')
    parser.add_argument('--kid', action='store_true', help='Also KID over all samples (same Inception features).')
    parser.add_argument('--csv', default=None, help='CSV output')
    parser.add_argument('--md', default=None, help='Markdown table output')
    args = parser.parse_args(argv)
    if args.lr is None and args.scale is None:
        parser.error('give --lr or --scale')
    if args.lr_consistency < 0:
        parser.error(f'--lr_consistency must be >= 0, got {args.lr_consistency}')
    if args.lr_consistency and args.lr is None:
        parser.error('--lr_consistency projects the samples onto their LR images: give --lr')
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    if not args.no_lpips:
        try:
            get_lpips_model(device=device)
        except FileNotFoundError as error:
            sys.exit(f'{error}\nTo measure without LPIPS and diversity, pass --no_lpips.')
    csv_path = args.csv or osp.join(args.sr, 'metrics.csv')
    md_path = args.md or osp.join(args.sr, 'metrics.md')
    check_outputs({'--csv': csv_path, '--md': md_path}, {'--gt': args.gt, '--lr': args.lr})
    for option, path in (('--csv', csv_path), ('--md', md_path)):
        if is_image_file(path):
            raise ValueError(f'{option} {path}: a report with an image extension would be read as an SR sample.')
    rows = measure(args.sr, args.gt, args.lr, args.scale, args.crop_border, use_lpips=not args.no_lpips,
                   temperature=args.temperature, fid=args.fid, kid=args.kid, lr_consistency=args.lr_consistency,
                   device=device)
    write_csv(rows, csv_path)
    table = format_markdown(rows)
    write_text(table, md_path)
    print(table)
    print(f'Written {csv_path} and {md_path}')
    return rows


cli = console_command(main, 'srflow-measure')

if __name__ == '__main__':
    sys.exit(cli())
