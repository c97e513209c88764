"""Every option srflow-plugin reads, with its default, its check and its meaning, in one place.

The plugin owns the sections ``train``, ``val`` and ``path`` of a BasicSR option file when
``model_type: SRFlowModel`` (and the sub-sections ``train.guard``, ``train.optim_g``, ``train.optim_rrdb``).
These sections also hold keys that BasicSR itself reads (listed here as ``basicsr`` keys, so they are accepted
and checked); any other key in a closed section is a typo or an option this model does not use, and
:func:`check_options` rejects it with the list of valid keys. A few top-level keys that decide where the model
runs (``num_gpu``) are checked too. ``network_g`` is checked by the network's constructor (unknown keyword
arguments raise there) and ``datasets`` / ``logger`` belong to BasicSR alone.

Each option carries its own check: a function that returns nothing and raises :class:`OptionError` naming the
key and the value. Code reads options only through :func:`get_option`, which returns the documented default when
the key is absent or ``~``. ``docs/options.md`` is generated from this table (:func:`options_markdown`;
``python -m srflow_plugin.options_schema > docs/options.md``), and a test fails when the two drift apart.

To add an option: add one ``Option`` line to its section (a new section is one more entry of ``SCHEMA``), then
regenerate docs/options.md.
"""
import difflib
import math
from collections import OrderedDict, namedtuple

from srflow_plugin.utils.paths import path_component
from srflow_plugin.utils.sampling import temperature_tag

Option = namedtuple('Option', ['default', 'owner', 'doc', 'check'])
Section = namedtuple('Section', ['keys', 'closed', 'doc'])

PLUGIN, BASICSR = 'srflow_plugin', 'basicsr'
VAL_TEMPERATURES = [0.0, 0.5, 0.75, 1.0]


class OptionError(ValueError):
    """An option of the file is unknown or invalid; the message names it."""


def _fail(key, value, requirement):
    return OptionError(f"Option '{key}' = {value!r} ({type(value).__name__}): {requirement}.")


# ---------------------------------------------------------------------------------------------- checks
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(low=None, high=None, low_open=False, integer=False):
    """A finite int/float (integer: a whole number, 2e5 accepted) in [low, high] (``low_open``: > low)."""

    def describe(value):
        kind = 'an integer' if integer else 'a number'
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f'<= {high:g}')
        hint = ' (YAML reads 1e-5 as a string: write 1.0e-5 or !!float 1e-5)' if isinstance(value, str) else ''
        return f"must be {kind}{' ' + ' and '.join(parts) if parts else ''}{hint}"

    def check(key, value):
        if not _is_number(value) or (integer and float(value) != int(value)):
            raise _fail(key, value, describe(value))
        if (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high):
            raise _fail(key, value, describe(value))

    return check


def boolean(key, value):
    if not isinstance(value, bool):
        raise _fail(key, value, 'must be true or false')


def text(key, value):
    if not isinstance(value, str) or not value:
        raise _fail(key, value, 'must be a non-empty string')


def mapping(key, value):
    if not isinstance(value, dict):
        raise _fail(key, value, 'must be a mapping {key: value, ...}')


def list_of(item_check, min_len=1, length=None):
    def check(key, value):
        if not isinstance(value, (list, tuple)) or len(value) < min_len or (length and len(value) != length):
            size = f'exactly {length}' if length else f'at least {min_len}'
            raise _fail(key, value, f'must be a list of {size} item(s)')
        for item in value:
            item_check(f'{key}[]', item)

    return check


def temperature_list(key, value):
    """Temperatures >= 0 that differ as written in sample file names (0.5 and 0.50 would write the same files)."""
    list_of(number(low=0))(key, value)
    tags = [temperature_tag(t) for t in value]
    if len(set(tags)) < len(tags):
        raise _fail(key, value, f'repeats a temperature as written in file names ({" ".join(tags)}): the samples '
                    'would overwrite each other')


def file_name(key, value):
    """A non-empty string that is one file name (it becomes part of an output path)."""
    text(key, value)
    try:
        path_component(value, f"Option '{key}'")
    except ValueError as error:
        raise OptionError(str(error)) from error


def loss_options(key, value):
    mapping(key, value)
    text(f'{key}.type', value.get('type'))
    if 'loss_weight' in value:
        number(low=0)(f'{key}.loss_weight', value['loss_weight'])
    if value.get('quantization') is not None:
        number(low=0, low_open=True)(f'{key}.quantization', value['quantization'])


def num_gpu(key, value):
    """0 (CPU) or the number of CUDA devices to use; more than there are is an error here, not at .to()."""
    if value == 'auto':
        return
    number(low=0, integer=True)(key, value)
    if value > 0:
        import torch
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if value > available:
            raise _fail(key, value, f'asks for CUDA devices but {available} are available; use num_gpu: 0 (CPU) '
                        'or auto')


def one_of(*choices):
    def check(key, value):
        if value not in choices:
            raise _fail(key, value, f"must be one of {', '.join(map(str, choices))} or ~")

    return check


def anything(key, value):
    """Set by BasicSR or passed to BasicSR unchanged."""


# ---------------------------------------------------------------------------------------------- the table
REALESRNET = 'basicsr (RealESRNetModel)'
_probability = number(low=0, high=1)
_range = list_of(number(low=0), length=2)


def _degradation_stage(stage, suffix, resize_prob, resize_range, noise_range, poisson_scale_range):
    """The option keys of one of Real-ESRGAN's two degradation stages (``suffix`` '' or '2'), with its defaults."""
    name = f'{stage} degradation'
    return OrderedDict([
        (f'resize_prob{suffix}', Option(resize_prob, REALESRNET, f'{name}: probabilities of resizing up, down, '
                                        'keep.', list_of(_probability, length=3))),
        (f'resize_range{suffix}', Option(resize_range, REALESRNET, f'{name}: range of the resize factor.', _range)),
        (f'gaussian_noise_prob{suffix}', Option(0.5, REALESRNET, f'{name}: probability of Gaussian (else Poisson) '
                                                'noise.', _probability)),
        (f'noise_range{suffix}', Option(noise_range, REALESRNET, f'{name}: Gaussian noise sigma range (8-bit '
                                        'levels).', _range)),
        (f'poisson_scale_range{suffix}', Option(poisson_scale_range, REALESRNET, f'{name}: Poisson noise scale '
                                                'range.', _range)),
        (f'gray_noise_prob{suffix}', Option(0.4, REALESRNET, f'{name}: probability of gray noise (the same on all '
                                            'channels).', _probability)),
        (f'jpeg_range{suffix}', Option([30, 95], REALESRNET, f'{name}: JPEG quality range (DiffJPEG).',
                                       list_of(number(low=1, high=100), length=2))),
    ])


TOP_LEVEL_DOC = ('Top-level keys the plugin checks (all other top-level keys belong to BasicSR). The keys after '
                 '`num_gpu` drive `RealSRFlowModel`\'s synthesis of LR images (BasicSR\'s '
                 '`RealESRNetModel.feed_data`, the keys of Real-ESRGAN\'s `options/train_realesrnet_x4plus.yml`, whose '
                 'values are the defaults here); the blur kernels come from the dataset, `type: RealESRGANDataset` '
                 '(docs/real-world.md).')
REAL_DEGRADATION = OrderedDict(
    high_order_degradation=Option(True, REALESRNET, 'Synthesise the LR batch from the GT crops (RealSRFlowModel); '
                                  'false: train on the dataset\'s own LR images.', boolean),
    gt_usm=Option(True, REALESRNET, 'Sharpen the GT with unsharp masking (USMSharp) before degrading it; the flow '
                  'then models the sharpened GT.', boolean),
    **_degradation_stage('First', '', [0.2, 0.7, 0.1], [0.15, 1.5], [1, 30], [0.05, 3]),
    second_blur_prob=Option(0.8, REALESRNET, 'Second degradation: probability of blurring with `kernel2`.',
                            _probability),
    **_degradation_stage('Second', '2', [0.3, 0.4, 0.3], [0.3, 1.2], [1, 25], [0.05, 2.5]),
    gt_size=Option(None, REALESRNET, 'GT crop size after the degradation (paired_random_crop of the GT and the '
                   'synthesised LR); required by RealSRFlowModel, a multiple of 2 * scale.',
                   number(low=2, integer=True)),
    queue_size=Option(180, REALESRNET, 'Training pair pool that mixes degradations across batches (a multiple of '
                      'the batch size); 0: no pool (a plugin addition: BasicSR\'s model always pools).',
                      number(low=0, integer=True)),
)

SCHEMA = OrderedDict([
    ('', Section(OrderedDict(
        num_gpu=Option('auto', BASICSR, 'Number of CUDA devices; 0 runs on the CPU, auto uses all there are. '
                       'Checked against the machine when the model is built.', num_gpu),
        **REAL_DEGRADATION,
    ), False, TOP_LEVEL_DOC)),
    ('train', Section(OrderedDict(
        # read by the plugin
        nll_opt=Option({'type': 'FlowNLLLoss'}, PLUGIN,
                       'Loss on the flow\'s NLL (bits per dimension): `{type: FlowNLLLoss, loss_weight: 1.0, '
                       'quantization: ~}`. With `quantization: q` the GT is dequantised with U(-0.5, 0.5)/q noise '
                       'and log2(q) is added per dimension.', loss_options),
        train_rrdb_delay=Option(0.5, PLUGIN,
                                'Fraction of `total_iter` during which the LR encoder (RRDB) is frozen: no '
                                'gradients, eval mode, untouched by the optimizer. 0 trains it from the first '
                                'iteration, 1 never; ~ (or absent) is the release recipe, 0.5.',
                                number(low=0, high=1)),
        optim_rrdb=Option(None, PLUGIN,
                          'Own optimizer settings for the encoder parameter group once it trains, e.g. '
                          '`{lr: 1.0e-5}` (section `train.optim_rrdb`). ~: the settings of `optim_g`.', mapping),
        pixel_opt=Option(None, PLUGIN,
                         'Optional extra loss between the tau=0 reverse output and GT, e.g. '
                         '`{type: L1Loss, loss_weight: 0.1}`. Off (~) in the release recipe.', loss_options),
        grad_clip_norm=Option(None, PLUGIN,
                              'Clip the global gradient norm to this value (~: no clipping; the norm is still '
                              'checked for NaN/inf, and such a step is skipped).', number(low=0, low_open=True)),
        memory_saving=Option(False, PLUGIN,
                             'Backpropagate through the flow without storing its activations (each step\'s input '
                             'is reconstructed from its output with the exact inverse) and checkpoint the '
                             'encoder\'s RRDB blocks: same gradients, far less memory, one more forward. See '
                             'docs/performance.md.', boolean),
        amp=Option(None, PLUGIN,
                   'Mixed precision for the encoder and the affine sub-networks: `bf16`, `fp16` (with a gradient '
                   'scaler) or ~ (float32). The flow\'s log-dets, ActNorm, 1x1 convolutions and sums stay float32.',
                   one_of('bf16', 'fp16')),
        actnorm_init_samples=Option(1, PLUGIN,
                                    'Training images on which ActNorm\'s data-dependent initialisation is computed, '
                                    'as Glow does on a separate init batch. With a batch smaller than this, the '
                                    'first iterations only collect their GT/LR crops (no step; logged) and the '
                                    'layers are initialised on all of them together. 1: on the first batch, as the '
                                    'release does.', number(low=1, integer=True)),
        actnorm_max_scale=Option(1000.0, PLUGIN,
                                 'A batch whose statistics give an ActNorm channel a scale above this (a channel '
                                 'with almost no variance, e.g. a flat crop; std below about 1/scale) or a '
                                 'non-finite one is not used to initialise: the layers stay uninitialised, the '
                                 'step is skipped and the next batch is tried.', number(low=1, low_open=True)),
        guard=Option(None, PLUGIN, 'The spike guard and roll-back (section `train.guard`). ~: its defaults (on).',
                     mapping),
        noise_conditioning=Option(None, PLUGIN, 'Noise conditioning (NCSR/SoftFlow, section '
                                  '`train.noise_conditioning`): each training HR image gets Gaussian noise of a '
                                  'std drawn uniformly from [0, max_std], given to the flow as a condition; '
                                  'validation and sampling use std 0. Needs `network_g.noise_conditioning: true`. '
                                  '~: off (the release).', mapping),
        # read by BasicSR (train_pipeline, BaseModel) or by this model in BasicSR's way
        total_iter=Option(None, BASICSR, 'Number of training iterations (required).', number(low=1, integer=True)),
        warmup_iter=Option(-1, BASICSR, 'Linear learning-rate warm-up iterations; -1: none.',
                           number(low=-1, integer=True)),
        optim_g=Option(None, BASICSR, 'Optimizer of the network: `{type: Adam, lr: ..., betas: [0.9, 0.999]}` '
                       '(section `train.optim_g`).', mapping),
        scheduler=Option(None, BASICSR, 'Learning-rate scheduler: `{type: MultiStepLR, milestones: [...], '
                         'gamma: 0.5}`.', mapping),
        ema_decay=Option(0, BASICSR, 'Exponential moving average of the weights (net_g_ema); 0: off. Never '
                         'averages in a rejected step.', number(low=0, high=1, integer=False)),
    ), True, 'Training.')),
    ('train.optim_g', Section(OrderedDict(
        type=Option('Adam', BASICSR, 'Optimizer class of torch.optim that BasicSR supports.', text),
        lr=Option(None, BASICSR, 'Learning rate (required).', number(low=0)),
        betas=Option([0.9, 0.999], BASICSR, 'Adam\'s betas.', list_of(number(low=0, high=1), length=2)),
        weight_decay=Option(0, BASICSR, 'Weight decay.', number(low=0)),
        eps=Option(1e-8, BASICSR, 'Adam\'s eps.', number(low=0, low_open=True)),
    ), False, 'Optimizer of the flow (and of the encoder unless `optim_rrdb` overrides); other keyword arguments of '
        'the optimizer class are passed on unchecked.')),
    ('train.optim_rrdb', Section(OrderedDict(
        lr=Option(None, PLUGIN, 'Learning rate of the encoder group (~: optim_g\'s).', number(low=0)),
        betas=Option(None, PLUGIN, 'Adam\'s betas of the encoder group.', list_of(number(low=0, high=1), length=2)),
        eps=Option(None, PLUGIN, 'Adam\'s eps of the encoder group.', number(low=0, low_open=True)),
        weight_decay=Option(None, PLUGIN, 'Weight decay of the encoder group.', number(low=0)),
    ), True, 'Overrides of `optim_g` for the encoder parameter group.')),
    ('train.guard', Section(OrderedDict(
        enabled=Option(True, PLUGIN, 'Reject loss/gradient spikes and roll back to a good snapshot. false: only '
                       'non-finite steps are skipped (the release behaviour).', boolean),
        warmup_iter=Option(50, PLUGIN, 'Accepted steps recorded before the spike tests start.',
                           number(low=1, integer=True)),
        window=Option(200, PLUGIN, 'Number of recent accepted steps whose median and MAD define "normal".',
                      number(low=5, integer=True)),
        loss_deviations=Option(12.0, PLUGIN, 'Reject a step whose loss is above median + this many robust '
                               'deviations (1.4826 MAD, at least `loss_min_deviation`) of the recent losses.',
                               number(low=0, low_open=True)),
        loss_min_deviation=Option(0.05, PLUGIN, 'Floor of the robust deviation of the loss (bits/dim), so a '
                                  'very flat loss history does not make every small rise a spike.',
                                  number(low=0, low_open=True)),
        grad_ratio=Option(100.0, PLUGIN, 'Reject a step whose gradient norm (before clipping) is above this many '
                          'times the median of the recent norms.', number(low=1, low_open=True)),
        max_rejected=Option(5, PLUGIN, 'Roll back after this many consecutive rejected steps.',
                            number(low=1, integer=True)),
        snapshot_freq=Option(100, PLUGIN, 'Iterations between in-memory snapshots (weights + optimizer state) to '
                             'roll back to; a snapshot is taken only of finite weights after an accepted step.',
                             number(low=1, integer=True)),
        cooldown_factor=Option(0.1, PLUGIN, 'After a roll-back the learning rates are multiplied by this ...',
                               number(low=0, low_open=True, high=1)),
        cooldown_iter=Option(200, PLUGIN, '... for this many iterations, then restored.',
                             number(low=0, integer=True)),
    ), True, 'Spike guard and recovery (docs/robustness.md).')),
    ('train.noise_conditioning', Section(OrderedDict(
        max_std=Option(None, PLUGIN, 'Largest noise std, in image units ([0, 1] images; 0.02 is about 5 gray '
                       'levels). Required.', number(low=0, low_open=True, high=1)),
    ), True, 'Noise conditioning (docs/real-world.md).')),
    ('val', Section(OrderedDict(
        heats=Option(VAL_TEMPERATURES, PLUGIN, 'Temperatures tau at which samples are drawn and metrics computed '
                     '(the key keeps the release\'s name, "heats"). Metric keys get the suffix `_t<tau>` (e.g. '
                     '`psnr_t0.75`).', temperature_list),
        n_sample=Option(3, PLUGIN, 'Samples per image and temperature (tau = 0 is deterministic: one sample).',
                        number(low=1, integer=True)),
        seed=Option(0, PLUGIN, 'Base seed of the sampling noise; each image gets its own generator seeded '
                    'from this and its name, so samples are reproducible.', number(low=0, integer=True)),
        calc_nll=Option(True, PLUGIN, 'Also compute the validation NLL (bits/dim, key `nll`) when GT exists; '
                        'in training it includes the dequantisation constant, like the loss `l_nll`.', boolean),
        nll_quantization=Option(None, PLUGIN, 'Quantisation levels q whose constant log2(q) is added to the '
                                'reported NLL (the discrete-image scale of the training loss). ~: the training '
                                'loss\'s `quantization` when training, none (continuous density) in testing; '
                                'the log line names the scale.', number(low=0, low_open=True)),
        save_csv=Option(True, PLUGIN, 'In testing, write `results/<name>/metrics_<dataset>.csv`.', boolean),
        precompute_condition=Option(True, PLUGIN, 'Prepare every flow step\'s LR-only part once per image and '
                                    'reuse it for all temperatures and samples (faster; about 2.1 KB per HR pixel in '
                                    'float32, 5.4 GiB for a 2040x1356 x4 image). false: only the encoder features '
                                    'are kept (about 0.4 KB per HR pixel), same results.', boolean),
        amp=Option(None, PLUGIN, 'Mixed precision (`bf16`, `fp16` or ~) for validation\'s and testing\'s '
                   'encoder and affine sub-networks, as `train.amp`.', one_of('bf16', 'fp16')),
        safe_sampling=Option(False, PLUGIN, 'Repair samples with non-finite or far out-of-range pixels: the '
                             'latents of the offending region are redrawn at a lower temperature until the sample '
                             'is finite (srflow_plugin/inference/safe_sampling.py, docs/real-world.md); key '
                             '`repaired_t<tau>` counts the repaired pixels. false: samples as drawn (the '
                             'release).', boolean),
        lr_consistency=Option(0, PLUGIN, 'Back-projection iterations (srflow_plugin/inference/lr_consistency.py). > 0: '
                              'every sample is also measured after its projection onto the HR images whose '
                              'MATLAB-bicubic downscale is its LR input, under the keys `<metric>_projected_t<tau>` '
                              '(the unprojected keys stay); saved images are the unprojected samples. 0: off.',
                              number(low=0, integer=True)),
        skip_missing_metrics=Option(False, PLUGIN, 'A metric whose backbone weights (LPIPS, FID) are missing is an '
                                    'error when the model is built; true: it is dropped with a warning instead.',
                                    boolean),
        val_freq=Option(None, BASICSR, 'Validate every this many iterations (training only).',
                        number(low=1, integer=True)),
        save_img=Option(False, BASICSR, 'Save the SR images of every temperature and sample.', boolean),
        metrics=Option(None, BASICSR, 'BasicSR metric options, e.g. `psnr: {type: calculate_psnr, '
                       'crop_border: 4}`; `better: lower` for LPIPS. Each is computed at every temperature.', mapping),
        pbar=Option(False, BASICSR, 'Show a progress bar.', boolean),
        suffix=Option(None, BASICSR, 'Suffix of saved image names in testing.', file_name),
    ), True, 'Validation (training) and testing.')),
    ('path', Section(OrderedDict(
        pretrain_network_rrdb=Option(None, PLUGIN, 'Pretrained LR encoder (BasicSR RRDBNet/SRFlowRRDBNet '
                                     'checkpoint or a release RRDB_*.pth). Ignored when `pretrain_network_g` '
                                     'loads the whole network or when resuming.', text),
        strict_load_rrdb=Option(True, PLUGIN, 'Require every encoder key to match when loading it.', boolean),
        pretrain_network_g=Option(None, BASICSR, 'Whole SRFlowNet checkpoint to start from / to test.', text),
        param_key_g=Option('params', BASICSR, 'Key inside the checkpoint: params or params_ema.', text),
        strict_load_g=Option(True, BASICSR, 'Require every key to match.', boolean),
        resume_state=Option(None, BASICSR, 'Training state to resume from (set by --auto_resume).', text),
        ignore_resume_networks=Option(None, BASICSR, 'Networks not reloaded when resuming.', anything),
        experiments_root=Option(None, BASICSR, 'Set by BasicSR.', anything),
        models=Option(None, BASICSR, 'Set by BasicSR.', anything),
        training_states=Option(None, BASICSR, 'Set by BasicSR.', anything),
        log=Option(None, BASICSR, 'Set by BasicSR.', anything),
        visualization=Option(None, BASICSR, 'Set by BasicSR.', anything),
        results_root=Option(None, BASICSR, 'Set by BasicSR.', anything),
    ), True, 'Paths.')),
])


def _section_of(opt, section):
    """``opt[a][b]`` for section 'a.b' ('' is the top level); None when absent or ~."""
    node = opt
    for part in section.split('.') if section else []:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _unknown_key_error(section, key, valid):
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    return OptionError(f"Unknown option '{section}.{key}' for SRFlowModel.{hint} "
                       f"Valid '{section}' options: {', '.join(valid)}.")


def check_options(opt):
    """Raise :class:`OptionError` for an unknown key in a closed section or a value that fails its check.

    Every message names the key (``section.key``) and the value.

    Args:
        opt (dict): The parsed BasicSR option dict.
    """
    for section, spec in SCHEMA.items():
        given = _section_of(opt, section)
        if given is None:
            continue
        if not isinstance(given, dict):
            raise _fail(section, given, 'must be a mapping {key: value, ...}')
        for key, value in given.items():
            if key not in spec.keys:
                if spec.closed:
                    raise _unknown_key_error(section, key, list(spec.keys))
                continue
            if value is not None:
                spec.keys[key].check(f'{section}.{key}' if section else key, value)
    if opt.get('is_train', True) and _section_of(opt, 'train') is not None:
        for section, key in (('train', 'total_iter'), ('train.optim_g', 'lr')):
            if _section_of(opt, section) is None or _section_of(opt, section).get(key) is None:
                raise OptionError(f"Option '{section}.{key}' is required for training.")
    noise = _section_of(opt, 'train.noise_conditioning')
    if noise is not None and noise.get('max_std') is None:
        raise OptionError("Option 'train.noise_conditioning.max_std' is required when noise conditioning is on.")


def get_option(opt, section, key):
    """The value of ``opt[section][key]`` (section 'a.b' for nested ones), or its documented default when absent
    or ~ (None)."""
    option = SCHEMA[section].keys[key]  # KeyError: an option read that the schema does not list
    value = (_section_of(opt, section) or {}).get(key)
    return option.default if value is None else value


def _default_text(default):
    return '~' if default is None else f'`{default}`'


def options_markdown():
    """The option reference as markdown (one table per section); docs/options.md is exactly this."""
    lines = ['# Options', '',
             'Generated from `srflow_plugin/options_schema.py` by `python -m srflow_plugin.options_schema > '
             'docs/options.md`; do not edit by hand (a test compares the two).', '',
             'Every option is checked once, when the model is built: a wrong type or range is an error naming the '
             'key and the value. ~ (or leaving the key out) means the default.', '']
    for section, spec in SCHEMA.items():
        title = f'`{section}:`' if section else 'top level'
        lines += [f'## {title}', '', spec.doc, '', '| option | default | read by | meaning |', '|---|---|---|---|']
        for key, option in spec.keys.items():
            lines.append(f'| `{key}` | {_default_text(option.default)} | {option.owner} | {option.doc} |')
        lines.append('')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(options_markdown(), end='')
