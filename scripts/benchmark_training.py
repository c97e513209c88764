"""Prints the time and peak memory of SRFlow training steps (NLL, backward, Adam), each path beside the plain one.

    python scripts/benchmark_training.py                       # released x4 layout, batch 4 x 160x160 GT, CPU
    python scripts/benchmark_training.py --memory_budget 8GB   # + the largest batch that fits, for both paths
    python scripts/benchmark_training.py --patch 160 --batch 12 --device cuda   # the release's x4 recipe on a GPU
    python scripts/benchmark_training.py --batch 12 --device cuda --paths plain memory_saving bf16 fp16 \
        --largest_batch 512                                    # as scripts/gpu_check.sh: + the largest batch that fits
    python scripts/benchmark_training.py --frozen_encoder      # as during train_rrdb_delay

Paths: ``plain`` (float32, activations stored), ``memory_saving`` (train.memory_saving: the flow's activations
reconstructed from its inverse in backward, RRDB blocks checkpointed), ``bf16`` (train.amp: bf16) and ``fp16``
(train.amp: fp16, with a gradient scaler as in training; not run by default). Each path
runs in its own process on the same weights and batch, so that its peak memory is its own: on the CPU the peak
resident memory of the process (large frees go back to the system), on CUDA the peak allocated memory. "above
runtime" is that peak minus what the process held before its first tensor (the interpreter and torch's libraries):
on the CPU the figure that corresponds to CUDA's allocated peak. "step memory" is the peak minus what was resident
before the step (weights, Adam state, inputs). The gradient
difference compares the first step's gradients with the plain path's (max over parameters of |g - g_plain| /
|g_plain|); "last NLL" is the loss of the last step, after the same updates on every path. ``--largest_batch N``
finds the largest batch whose step runs without running out of memory (one process per try, at most 5 per path:
on CUDA from the batch that the measured step memory predicts for the whole GPU, on the CPU doubling from the
batch; then halving the gap to 1/16; at most N), on CUDA the figure to read. Random (slightly perturbed initial) weights
and images. Figures, not assertions.
"""
import argparse
import os
import queue as queues
import re
import tempfile

import torch
import torch.multiprocessing as mp

from srflow_plugin.utils.allocator import keep_freed_memory
from benchmark_common import presets, timed

PATHS = {'plain': (False, None), 'memory_saving': (True, None), 'bf16': (False, 'bf16'), 'fp16': (False, 'fp16')}
DEFAULT_PATHS = ['plain', 'memory_saving', 'bf16']


def _resident_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _peak_bytes(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device)
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_bytes(device):
    return torch.cuda.memory_allocated(device) if device.type == 'cuda' else _resident_bytes()


def run_path(args, path, batch, steps, grad_file, queue):
    """One path in this (fresh) process: warm-up step (its gradients saved), then ``steps`` timed steps."""
    try:
        queue.put(_run_path(args, path, batch, steps, grad_file))
    except torch.cuda.OutOfMemoryError:
        queue.put(dict(out_of_memory=True))


def _run_path(args, path, batch, steps, grad_file):
    from srflow_plugin.archs import SRFlowNet
    from srflow_plugin.archs.srflow_arch import mixed_precision

    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    device = torch.device(args.device)
    runtime = _current_bytes(device)  # the interpreter, torch and its libraries: no tensor of this run yet
    torch.manual_seed(0)
    net = SRFlowNet(**presets()[args.preset]).train().to(device)
    generator = torch.Generator().manual_seed(1)
    gt = torch.rand(batch, 3, args.patch, args.patch, generator=generator).to(device)
    lq = torch.nn.functional.avg_pool2d(gt, net.scale)
    with torch.no_grad():
        net.encode(gt[:1], lq[:1])  # ActNorm's data-dependent initialisation, as the first training batch does
        for param in net.parameters():  # no zero-initialised sub-network outputs: every layer shapes the result
            param.add_(torch.randn_like(param) * 1e-3)
    reference = path == 'float64'  # the plain path in float64 on the same weights: only its gradients are used
    if reference:
        net, gt, lq = net.double(), gt.double(), lq.double()
    net.memory_saving, precision = PATHS[path] if not reference else (False, None)
    net.encoder.requires_grad_(not args.frozen_encoder)
    net.encoder.train(not args.frozen_encoder)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')  # as SRFlowModel trains with fp16
    nlls = []

    def step(save_grads=False):
        optimizer.zero_grad(set_to_none=True)
        with mixed_precision(net, precision):
            nll = net.encode(gt, lq)[1].mean()
        scaler.scale(nll).backward()
        scaler.unscale_(optimizer)
        if save_grads:
            torch.save({n: p.grad.double() for n, p in net.named_parameters() if p.grad is not None}, grad_file)
        scaler.step(optimizer)
        scaler.update()
        nlls.append(nll.item())

    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    step(save_grads=grad_file is not None)  # warm-up: Adam state
    before = _current_bytes(device)
    seconds = timed(step, device, steps) if steps else float('nan')
    peak = _peak_bytes(device)
    capacity = torch.cuda.get_device_properties(device).total_memory if device.type == 'cuda' else None
    return dict(seconds=seconds, peak=peak, step=peak - before, tensors=peak - runtime, nll=nlls[0], last_nll=nlls[-1],
                capacity=capacity, out_of_memory=False)


def saved_activations(args):
    """Bytes autograd keeps for backward after one forward (NLL) pass, per path, in this process: the bulk of a
    training step's peak memory, at a fraction of the cost of a full step."""
    from srflow_plugin.archs import SRFlowNet
    from srflow_plugin.archs.srflow_arch import mixed_precision

    torch.manual_seed(0)
    net = SRFlowNet(**presets()[args.preset]).to(args.device).train()
    net.encoder.requires_grad_(not args.frozen_encoder)
    gt = torch.rand(args.batch, 3, args.patch, args.patch, device=args.device)
    lq = torch.nn.functional.avg_pool2d(gt, net.scale)
    with torch.no_grad():
        net.encode(gt, lq)  # ActNorm initialisation
    sizes = {}
    for path in args.paths:
        net.memory_saving, precision = PATHS[path]
        total = [0]

        def pack(tensor):
            total[0] += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), mixed_precision(net, precision):
            net.encode(gt, lq)
        sizes[path] = total[0]
    return sizes


def measure(args, path, batch, steps, grad_file=None, may_run_out=False):
    """:func:`run_path` in a fresh process (in this one with ``--in_process``); its result, or None when it ran out
    of memory and ``may_run_out``."""
    if args.in_process:
        queue = queues.Queue()
        run_path(args, path, batch, steps, grad_file, queue)
        result = queue.get()
        if result['out_of_memory'] and not may_run_out:
            raise SystemExit(f'the {path} run (batch {batch}) failed: ran out of memory')
        return None if result['out_of_memory'] else result
    context = mp.get_context('spawn')
    queue = context.Queue()
    process = context.Process(target=run_path, args=(args, path, batch, steps, grad_file, queue))
    process.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=5)
        except queues.Empty:
            if not process.is_alive():
                break
    process.join()
    if result is None or process.exitcode != 0 or (result['out_of_memory'] and not may_run_out):
        status = 'ran out of memory' if result and result['out_of_memory'] else f'exit code {process.exitcode}'
        raise SystemExit(f'the {path} run (batch {batch}) failed: {status}')
    return None if result['out_of_memory'] else result


def largest_batch(args, path, measured, limit, max_tries=5):
    """(largest batch found to fit, the smallest batch that did not fit or None, tries), at most ``limit``. A batch
    fits when one training step (Adam's state included) runs. On CUDA the first try is the batch that the step
    memory of ``measured`` (the path's result at ``args.batch``) predicts for the whole GPU, then 1.25x steps up or
    down; on the CPU, doubling from ``args.batch``. Then the gap is halved until it is at most 1/16 of the batch."""
    fits, fails, tries = 0, None, 0
    if measured['capacity']:
        fixed = measured['peak'] - measured['step']  # weights, Adam's state, the batch
        batch, growth = int((measured['capacity'] - fixed) / (measured['step'] / args.batch)), 1.25
    else:
        batch, growth = args.batch, 2.0
    batch = max(1, min(batch, limit))
    while tries < max_tries:
        tries += 1
        if measure(args, path, batch, 0, may_run_out=True) is not None:
            fits = batch
        else:
            fails = batch
        if fails is not None and fails - fits <= max(1, fits // 16) or fails is None and fits == limit:
            break
        if fails is None:
            batch = min(limit, max(fits + 1, int(fits * growth)))
        elif fits == 0:
            batch = max(1, int(fails / growth))
            if batch == fails:
                break
        else:
            batch = (fits + fails) // 2
    return fits, fails, tries


def gradient_difference(file, reference_file):
    grads, reference = torch.load(file), torch.load(reference_file)
    if grads.keys() != reference.keys():
        return float('inf')
    return max(((grads[n] - g).norm() / g.norm()).item() for n, g in reference.items() if g.norm() > 0)


def parse_bytes(text):
    match = re.fullmatch(r'\s*([0-9.]+)\s*([KMGT]?)i?B?\s*', text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f'--memory_budget {text!r}: expected a size like 8GB or 512MB')
    return float(match.group(1)) * 1024**'BKMGT'.index(match.group(2).upper() or 'B')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', default='SRFlow_DF2K_4X', choices=sorted(presets()))
    parser.add_argument('--patch', type=int, default=160, help='GT patch size (a multiple of 2 x scale)')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--steps', type=int, default=2, help='timed steps per path, after one warm-up step')
    parser.add_argument('--paths', nargs='+', default=DEFAULT_PATHS, choices=list(PATHS))
    parser.add_argument('--memory_budget', type=parse_bytes, default=None,
                        help='e.g. 8GB: print the largest batch whose peak fits, for each path')
    parser.add_argument('--largest_batch', type=int, default=None, metavar='N',
                        help='find the largest batch up to N whose training step runs (plain and memory_saving)')
    parser.add_argument('--frozen_encoder', action='store_true', help='no gradients for the encoder')
    parser.add_argument('--activations_only', action='store_true',
                        help='only the bytes kept for backward after one forward pass per path (fast)')
    parser.add_argument('--float64_reference', action='store_true',
                        help='also the first step\'s gradients in float64: each path\'s distance from them, the plain '
                        'float32 path included (float32 rounding itself)')
    parser.add_argument('--keep_freed_memory', action='store_true',
                        help='time the steps as srflow-train runs them: freed memory kept for reuse (no page faults); '
                        'the memory columns then show what the allocator keeps, not the live tensors')
    parser.add_argument('--in_process', action='store_true',
                        help='every path in this process, one after the other (fast start; the peaks are then not '
                        'each path\'s own): for dry runs')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    scale = presets()[args.preset]['scale']
    if args.patch % (2 * scale):
        raise SystemExit(f'--patch {args.patch} is not a multiple of 2 x scale = {2 * scale}')
    if not args.keep_freed_memory:
        # large blocks straight back to the system when freed, so that resident memory follows live tensors (this
        # costs page faults: --keep_freed_memory times the steps without them)
        os.environ.setdefault('MALLOC_MMAP_THRESHOLD_', '65536')

    print(f'{args.preset}, batch {args.batch} x {args.patch}x{args.patch} GT, encoder '
          f'{"frozen" if args.frozen_encoder else "trained"}, {args.threads} threads on {args.device}; '
          + ('all paths in one process' if args.in_process else 'one process per path')
          + ('; freed memory kept' if args.keep_freed_memory else ''))
    if args.activations_only:
        sizes = saved_activations(args)
        for path, size in sizes.items():
            print(f'  {path:<14s} kept for backward: {size / 2**30:7.3f} GiB  '
                  f'{size / sizes.get("plain", size):5.3f}x plain')
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        grad_files = {path: os.path.join(tmp, f'{path}.pt') for path in args.paths}
        for path in args.paths:
            results[path] = measure(args, path, args.batch, args.steps, grad_files[path])
        if args.float64_reference:
            grad_files['float64'] = os.path.join(tmp, 'float64.pt')
            measure(args, 'float64', args.batch, 0, grad_files['float64'])
        base = results.get('plain')
        ratios = f' {"time":>6s} {"peak":>6s} {"above":>6s} {"step":>6s} {"NLL diff":>9s} {"grad diff":>9s}'
        print(f'  {"path":<14s} {"step time":>10s} {"peak memory":>12s} {"above runtime":>14s} {"step memory":>12s}'
              f' {"last NLL":>9s}' + (ratios if base else '') + (f' {"vs fp64":>9s}' if args.float64_reference else ''))
        for path, r in results.items():
            line = (f'  {path:<14s} {r["seconds"]:9.2f}s {r["peak"] / 2**30:9.2f} GiB {r["tensors"] / 2**30:10.2f} GiB '
                    f'{r["step"] / 2**30:8.2f} GiB {r["last_nll"]:9.4f}')
            if base:
                diff = gradient_difference(grad_files[path], grad_files['plain'])
                line += (f' {r["seconds"] / base["seconds"]:5.2f}x {r["peak"] / base["peak"]:5.2f}x '
                         f'{r["tensors"] / base["tensors"]:5.2f}x {r["step"] / base["step"]:5.2f}x '
                         f'{abs(r["nll"] - base["nll"]):9.2e} {diff:9.2e}')
            if args.float64_reference:
                line += f' {gradient_difference(grad_files[path], grad_files["float64"]):9.2e}'
            print(line)
    if base:
        print(f'  (last NLL: bits/dim at step {args.steps + 1}, after the same {args.steps} updates on every path; '
              'ratios: path / plain; NLL diff in bits/dim on the first step; grad diff: max over parameters of '
              '|g - g_plain| / |g_plain|' +
              ('; vs fp64: the same against the float64 gradients' if args.float64_reference else '') + ')')
    if args.memory_budget is not None:
        print(f'  largest batch within {args.memory_budget / 2**30:.1f} GiB (peak memory, linear in the batch from '
              f'batch 1 and batch {args.batch}):')
        for path in [p for p in ('plain', 'memory_saving') if p in results]:
            small = measure(args, path, 1, 0)
            per_sample = (results[path]['peak'] - small['peak']) / max(args.batch - 1, 1)
            fixed = small['peak'] - per_sample
            largest = int((args.memory_budget - fixed) // per_sample) if per_sample > 0 else float('inf')
            print(f'    {path:<14s} {max(largest, 0):4d}  ({fixed / 2**30:.2f} GiB + {per_sample / 2**30:.2f} GiB '
                  'per sample)')

    if args.largest_batch is not None:
        print(f'  largest batch whose training step runs on {args.device} (tried up to {args.largest_batch}'
              + ('):' if args.in_process else ', one process per try):'))
        for path in [p for p in ('plain', 'memory_saving') if p in results]:
            fits, fails, tries = largest_batch(args, path, results[path], args.largest_batch)
            bound = (f'{fails} did not fit' if fails is not None else
                     f'the limit {args.largest_batch} fit, more may' if fits == args.largest_batch else
                     'more may fit')
            print(f'    {path:<14s} {fits:4d}  ({bound}; {tries} tries)')


if __name__ == '__main__':
    main()
