"""Every option srflow-plugin reads, with its default and meaning, in one place.

The plugin owns three sections of a BasicSR option file when ``model_type: SRFlowModel``: ``train``,
``val`` and ``path``. Each of them also holds keys that BasicSR itself reads (listed here as ``basicsr``
keys, so they are accepted); any other key in these sections is a typo or an option this model does not
use, and :func:`check_options` rejects it with the list of valid keys. ``network_g`` is checked by the
network's constructor (unknown keyword arguments raise there) and ``datasets`` / ``logger`` belong to
BasicSR alone.

``python -c "from srflow_plugin.options_schema import options_markdown; print(options_markdown())"``
prints the reference table of the README.
"""
import difflib
from collections import OrderedDict, namedtuple

Option = namedtuple('Option', ['default', 'owner', 'doc'])

PLUGIN, BASICSR = 'srflow_plugin', 'basicsr'
VAL_HEATS = [0.0, 0.5, 0.75, 1.0]

SCHEMA = OrderedDict(
    train=OrderedDict(
        # read by the plugin
        nll_opt=Option({'type': 'FlowNLLLoss'}, PLUGIN,
                       'Loss on the flow\'s NLL (bits per dimension): `{type: FlowNLLLoss, loss_weight: 1.0, '
                       'quantization: ~}`. With `quantization: q` the GT is dequantised with U(-0.5, 0.5)/q noise '
                       'and log2(q) is added per dimension.'),
        train_rrdb_delay=Option(0.5, PLUGIN,
                                'Fraction of `total_iter` during which the LR encoder (RRDB) is frozen: no '
                                'gradients, eval mode, untouched by the optimizer. 0 trains it from the first '
                                'iteration, 1 never; ~ (or absent) is the release recipe, 0.5.'),
        optim_rrdb=Option(None, PLUGIN,
                          'Own optimizer settings for the encoder parameter group once it trains, e.g. '
                          '`{lr: 1.0e-5}` (keys: lr, betas, eps, weight_decay). ~: the settings of `optim_g`.'),
        pixel_opt=Option(None, PLUGIN,
                         'Optional extra loss between the tau=0 reverse output and GT, e.g. '
                         '`{type: L1Loss, loss_weight: 0.1}`. Off (~) in the release recipe.'),
        grad_clip_norm=Option(None, PLUGIN,
                              'Clip the global gradient norm to this value (~: no clipping; the norm is still '
                              'checked for NaN/inf, and such a step is skipped).'),
        memory_saving=Option(False, PLUGIN,
                             'Backpropagate through the flow without storing its activations (each step\'s input '
                             'is reconstructed from its output with the exact inverse) and checkpoint the '
                             'encoder\'s RRDB blocks: same gradients, far less memory, one more forward. See '
                             'docs/performance.md.'),
        amp=Option(None, PLUGIN,
                   'Mixed precision for the encoder and the affine sub-networks: `bf16`, `fp16` (with a gradient '
                   'scaler) or ~ (float32). The flow\'s log-dets, ActNorm, 1x1 convolutions and sums stay float32.'),
        # read by BasicSR (train_pipeline, BaseModel) or by this model in BasicSR's way
        total_iter=Option(None, BASICSR, 'Number of training iterations (required).'),
        warmup_iter=Option(-1, BASICSR, 'Linear learning-rate warm-up iterations; -1: none.'),
        optim_g=Option(None, BASICSR, 'Optimizer of the network: `{type: Adam, lr: ..., betas: [0.9, 0.999]}`.'),
        scheduler=Option(None, BASICSR, 'Learning-rate scheduler: `{type: MultiStepLR, milestones: [...], '
                         'gamma: 0.5}`.'),
        ema_decay=Option(0, BASICSR, 'Exponential moving average of the weights (net_g_ema); 0: off.'),
    ),
    val=OrderedDict(
        heats=Option(VAL_HEATS, PLUGIN, 'Temperatures tau at which samples are drawn and metrics computed. '
                     'Metric keys get the suffix `_t<tau>` (e.g. `psnr_t0.75`).'),
        n_sample=Option(3, PLUGIN, 'Samples per image and heat (tau = 0 is deterministic: one sample).'),
        seed=Option(0, PLUGIN, 'Base seed of the sampling noise; each image gets its own generator seeded '
                    'from this and its name, so samples are reproducible.'),
        calc_nll=Option(True, PLUGIN, 'Also compute the validation NLL (bits/dim, key `nll`) when GT exists; '
                        'in training it includes the dequantisation constant, like the loss `l_nll`.'),
        save_csv=Option(True, PLUGIN, 'In testing, write `results/<name>/metrics_<dataset>.csv`.'),
        precompute_condition=Option(True, PLUGIN, 'Prepare every flow step\'s LR-only part once per image and '
                                    'reuse it for all heats and samples (faster; about 2.1 KB per HR pixel in '
                                    'float32, 5.4 GiB for a 2040x1356 x4 image). false: only the encoder features '
                                    'are kept (about 0.4 KB per HR pixel), same results.'),
        amp=Option(None, PLUGIN, 'Mixed precision (`bf16`, `fp16` or ~) for validation\'s and testing\'s '
                   'encoder and affine sub-networks, as `train.amp`.'),
        val_freq=Option(None, BASICSR, 'Validate every this many iterations (training only).'),
        save_img=Option(False, BASICSR, 'Save the SR images of every heat and sample.'),
        metrics=Option(None, BASICSR, 'BasicSR metric options, e.g. `psnr: {type: calculate_psnr, '
                       'crop_border: 4}`; `better: lower` for LPIPS. Each is computed at every heat.'),
        pbar=Option(False, BASICSR, 'Show a progress bar.'),
        suffix=Option(None, BASICSR, 'Suffix of saved image names in testing.'),
    ),
    path=OrderedDict(
        pretrain_network_rrdb=Option(None, PLUGIN, 'Pretrained LR encoder (BasicSR RRDBNet/SRFlowRRDBNet '
                                     'checkpoint or a release RRDB_*.pth). Ignored when `pretrain_network_g` '
                                     'loads the whole network or when resuming.'),
        strict_load_rrdb=Option(True, PLUGIN, 'Require every encoder key to match when loading it.'),
        pretrain_network_g=Option(None, BASICSR, 'Whole SRFlowNet checkpoint to start from / to test.'),
        param_key_g=Option('params', BASICSR, 'Key inside the checkpoint: params or params_ema.'),
        strict_load_g=Option(True, BASICSR, 'Require every key to match.'),
        resume_state=Option(None, BASICSR, 'Training state to resume from (set by --auto_resume).'),
        ignore_resume_networks=Option(None, BASICSR, 'Networks not reloaded when resuming.'),
        experiments_root=Option(None, BASICSR, 'Set by BasicSR.'),
        models=Option(None, BASICSR, 'Set by BasicSR.'),
        training_states=Option(None, BASICSR, 'Set by BasicSR.'),
        log=Option(None, BASICSR, 'Set by BasicSR.'),
        visualization=Option(None, BASICSR, 'Set by BasicSR.'),
        results_root=Option(None, BASICSR, 'Set by BasicSR.'),
    ),
)

OPTIM_RRDB_KEYS = ('lr', 'betas', 'eps', 'weight_decay')


class OptionError(ValueError):
    """An option of the file is unknown or invalid; the message names it."""


def _unknown_key_error(section, key, valid):
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ''
    return OptionError(f"Unknown option '{section}.{key}' for SRFlowModel.{hint} "
                       f"Valid '{section}' options: {', '.join(valid)}.")


def check_options(opt):
    """Raise :class:`OptionError` for an unknown key in the sections the plugin owns, or a bad value.

    Args:
        opt (dict): The parsed BasicSR option dict.
    """
    for section, keys in SCHEMA.items():
        given = opt.get(section)
        if given is None:
            continue
        for key in given:
            if key not in keys:
                raise _unknown_key_error(section, key, list(keys))
    train = opt.get('train') or {}
    optim_rrdb = train.get('optim_rrdb')
    if optim_rrdb is not None:
        for key in optim_rrdb:
            if key not in OPTIM_RRDB_KEYS:
                raise _unknown_key_error('train.optim_rrdb', key, list(OPTIM_RRDB_KEYS))
    delay = train.get('train_rrdb_delay')
    if delay is not None and not 0 <= float(delay) <= 1:
        raise OptionError(f'train.train_rrdb_delay must be a fraction of total_iter in [0, 1], got {delay}.')
    clip = train.get('grad_clip_norm')
    if clip is not None and not float(clip) > 0:
        raise OptionError(f'train.grad_clip_norm must be positive or ~, got {clip}.')
    for section in ('train', 'val'):
        amp = (opt.get(section) or {}).get('amp')
        if amp not in (None, 'bf16', 'fp16'):
            raise OptionError(f"{section}.amp must be bf16, fp16 or ~ (float32), got {amp!r}.")
    val = opt.get('val') or {}
    heats = val.get('heats')
    if heats is not None and (not isinstance(heats, (list, tuple)) or not heats
                              or any(float(h) < 0 for h in heats)):
        raise OptionError(f'val.heats must be a non-empty list of temperatures >= 0, got {heats!r}.')
    n_sample = val.get('n_sample')
    if n_sample is not None and (int(n_sample) != n_sample or n_sample < 1):
        raise OptionError(f'val.n_sample must be an integer >= 1, got {n_sample!r}.')


def get_option(opt, section, key):
    """The value of ``opt[section][key]``, or its documented default when absent or ~ (None)."""
    value = (opt.get(section) or {}).get(key)
    return SCHEMA[section][key].default if value is None else value


def options_markdown():
    """The option reference as markdown tables (one per section)."""
    lines = []
    for section, keys in SCHEMA.items():
        lines += [f'### `{section}:`', '', '| option | default | read by | meaning |', '|---|---|---|---|']
        for key, option in keys.items():
            default = '~' if option.default is None else f'`{option.default}`'
            lines.append(f'| `{key}` | {default} | {option.owner} | {option.doc} |')
        lines.append('')
    return '\n'.join(lines)
