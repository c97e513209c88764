"""SRFlowModel: trains a conditional flow (SRFlowNet, or any registered network with its ``condition`` / ``encode`` /
``decode`` / ``draw_latents`` interface) by maximum likelihood; validation lives in
:mod:`srflow_plugin.models.validation`.

The encoder schedule (``train_rrdb_delay``, ``optim_rrdb``) applies to networks with an ``encoder`` module, and the
ActNorm initialisation to networks with ActNorm layers; other flows train as a whole."""
import math
from collections import OrderedDict
from copy import deepcopy
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel, DistributedDataParallel

from srflow_plugin.archs.flow_layers import ActNorm
from srflow_plugin.archs.release_checkpoint import load_encoder_weights
from srflow_plugin.archs.srflow_arch import mixed_precision
from srflow_plugin.losses import FlowNLLLoss  # noqa: F401  (registers the default train.nll_opt)
from srflow_plugin.metrics import calculate_lpips, calculate_lr_psnr  # noqa: F401  (registers the val metrics)
from srflow_plugin.models.preflight import check_model_needs
from srflow_plugin.models.training_guard import TrainingGuard, initialize_actnorm, optimizer_tensors, tensors_finite
from srflow_plugin.models.validation import validate, write_metrics_csv
from srflow_plugin.options_schema import OptionError, check_options, get_option
from srflow_plugin.utils import register
from srflow_plugin.utils.checkpoint import atomic_save, remove_stale_temporaries, strip_module_prefix


@register(MODEL_REGISTRY)
class SRFlowModel(BaseModel):
    """SRFlow model: NLL training of a conditional flow, validation by sampling at several temperatures.

    Options are read once here and documented in :mod:`srflow_plugin.options_schema`; unknown keys in
    ``train``, ``val`` and ``path`` are rejected.
    """

    def __init__(self, opt):
        super().__init__(opt)
        check_options(opt)
        check_model_needs(opt)
        self.skipped_steps = 0
        self.log_dict = OrderedDict()

        if opt['dist'] and self.is_train:
            # DDP must not wait for gradients that never come: the encoder's SR head (its last conv_up, conv_hr,
            # conv_last) is never used by the flow, and the whole encoder is frozen during train_rrdb_delay
            opt.setdefault('find_unused_parameters', True)

        self.net_g = build_network(opt['network_g'])
        self.net_g = self.model_to_device(self.net_g)
        self.print_network(self.net_g)

        load_path = get_option(opt, 'path', 'pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g, load_path, get_option(opt, 'path', 'strict_load_g'),
                              get_option(opt, 'path', 'param_key_g'))
        elif get_option(opt, 'path', 'pretrain_network_rrdb') is not None:
            # (when resuming, BasicSR sets pretrain_network_g to the checkpoint, so this is skipped)
            rrdb_path = get_option(opt, 'path', 'pretrain_network_rrdb')
            if not self._has_encoder():
                raise ValueError(f"path.pretrain_network_rrdb is set, but network_g ({opt['network_g'].get('type')}) "
                                 'has no encoder to load it into')
            get_root_logger().info(f'Loading the pretrained encoder from {rrdb_path}')
            load_encoder_weights(self._bare().encoder, rrdb_path, strict=get_option(opt, 'path', 'strict_load_rrdb'))

        if self.is_train:
            if opt['rank'] == 0:  # a save killed in an earlier run leaves its temporary file behind
                for folder in (get_option(opt, 'path', 'models'), get_option(opt, 'path', 'training_states')):
                    if folder and osp.isdir(folder):
                        remove_stale_temporaries(folder)
            self.init_training_settings()

    # ------------------------------------------------------------------ set-up
    def _bare(self):
        return self.get_bare_model(self.net_g)

    def model_to_device(self, net):
        """As BaseModel, but DDP also works on CPU processes (gloo): device_ids only for CUDA."""
        net = net.to(self.device)
        if self.opt['dist']:
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(
                net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
        elif self.opt['num_gpu'] > 1:
            net = DataParallel(net)
        return net

    def init_training_settings(self):
        self.net_g.train()
        logger = get_root_logger()

        self.ema_decay = get_option(self.opt, 'train', 'ema_decay')
        if self.ema_decay > 0:
            logger.info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = get_option(self.opt, 'path', 'pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, get_option(self.opt, 'path', 'strict_load_g'),
                                  'params_ema')
            else:
                self.model_ema(0)  # copy net_g weight
            self.net_g_ema.eval()

        self.cri_nll = build_loss(deepcopy(get_option(self.opt, 'train', 'nll_opt'))).to(self.device)
        pixel_opt = get_option(self.opt, 'train', 'pixel_opt')
        self.cri_pix = build_loss(deepcopy(pixel_opt)).to(self.device) if pixel_opt else None

        total_iter = int(get_option(self.opt, 'train', 'total_iter'))
        delay = float(get_option(self.opt, 'train', 'train_rrdb_delay'))
        if not self._has_encoder():
            delay = 0  # a flow without a separate LR encoder (e.g. CouplingFlowNet) trains as a whole
        self.encoder_frozen_until = int(delay * total_iter)  # frozen for iterations 1..encoder_frozen_until
        if self.encoder_frozen_until > 0:
            logger.info(f'The encoder is frozen for the first {self.encoder_frozen_until} of {total_iter} '
                        'iterations.')
        clip = get_option(self.opt, 'train', 'grad_clip_norm')
        self.grad_clip_norm = float(clip) if clip is not None else None
        self._bare().memory_saving = bool(get_option(self.opt, 'train', 'memory_saving'))
        self.train_amp = get_option(self.opt, 'train', 'amp')
        # fp16 gradients underflow without loss scaling; the scaler's own inf check only adds to the NaN-skip
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.train_amp == 'fp16')
        self.guard = TrainingGuard.from_options(self.opt)
        self.actnorm_init_samples = int(get_option(self.opt, 'train', 'actnorm_init_samples'))
        self.actnorm_max_scale = float(get_option(self.opt, 'train', 'actnorm_max_scale'))
        self.actnorm_pending, self.actnorm_refused = [], 0
        self.actnorm_ready = False
        self.noise_max_std = None
        if get_option(self.opt, 'train', 'noise_conditioning') is not None:
            if getattr(self._bare(), 'noise_embedding', None) is None:
                network = self.opt['network_g'].get('type')
                raise OptionError("Option 'train.noise_conditioning' needs a network conditioned on the noise "
                                  f'level: set network_g.noise_conditioning: true ({network})')
            self.noise_max_std = float(get_option(self.opt, 'train.noise_conditioning', 'max_std'))
            logger.info(f'Noise conditioning: HR + N(0, s^2), s ~ U(0, {self.noise_max_std:g}) per image.')

        self.setup_optimizers()
        if get_option(self.opt, 'train', 'scheduler') is not None:
            self.setup_schedulers()

    def setup_optimizers(self):
        """One Adam, two parameter groups: the flow (``optim_g``) and the encoder (``optim_rrdb`` overrides)."""
        optim_opt = deepcopy(get_option(self.opt, 'train', 'optim_g'))
        optim_type = optim_opt.pop('type')
        flow_params, encoder_params = [], []
        for name, param in self._bare().named_parameters():
            (encoder_params if name.startswith('encoder.') else flow_params).append(param)
        groups = [{'params': flow_params}]
        if encoder_params:
            groups.append({'params': encoder_params, **deepcopy(get_option(self.opt, 'train', 'optim_rrdb') or {})})
        self.optimizer_g = self.get_optimizer(optim_type, groups, **optim_opt)
        self.optimizers.append(self.optimizer_g)

    # ------------------------------------------------------------------ training
    def feed_data(self, data):
        self.lq = data['lq'].to(self.device)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
        elif hasattr(self, 'gt'):
            del self.gt  # never measure against the GT of an earlier batch

    def encoder_trains(self, current_iter):
        """Whether the encoder is trained at this iteration (``train.train_rrdb_delay``)."""
        return current_iter > self.encoder_frozen_until

    def _has_encoder(self):
        return isinstance(getattr(self._bare(), 'encoder', None), torch.nn.Module)

    def _set_encoder_trainable(self, trainable):
        if not self._has_encoder():
            return
        encoder = self._bare().encoder
        for param in encoder.parameters():
            param.requires_grad_(trainable)
        # eval mode while frozen: no running statistics may move either
        encoder.train(trainable)

    def _initialize_actnorm(self, gt, current_iter):
        """ActNorm's data-dependent init (once), on ``train.actnorm_init_samples`` images, copied into net_g_ema.

        Returns True when every ActNorm is initialised and this iteration may train; False while crops are being
        collected or when the batch was refused (non-finite or degenerate statistics: the layers stay fresh).
        """
        bare = self._bare()
        if not self.actnorm_ready:
            # loaded or resumed weights: every ActNorm has its values already (it checks its bias on first use)
            self.actnorm_ready = not any(isinstance(m, ActNorm) and not m.initialized and not bool((m.bias != 0).any())
                                         for m in bare.modules())
        if self.actnorm_ready:
            return True
        self.actnorm_pending.append((gt, self.lq))
        if sum(g.shape[0] for g, _ in self.actnorm_pending) < self.actnorm_init_samples:
            get_root_logger().info(f'Iteration {current_iter}: collecting crops for the ActNorm initialisation, no '
                                   'step.')
            return False
        init_gt = torch.cat([g for g, _ in self.actnorm_pending])
        init_lq = torch.cat([lq for _, lq in self.actnorm_pending])
        self.actnorm_pending = []
        initialised, reason = initialize_actnorm(bare, init_gt, init_lq, self.actnorm_max_scale)
        if initialised is None:
            self.actnorm_refused += 1
            get_root_logger().warning(f'Iteration {current_iter}: ActNorm initialisation refused this batch '
                                      f'({reason}); step skipped, the next batch is tried.')
            return False
        if hasattr(self, 'net_g_ema'):
            ema_modules = dict(self.net_g_ema.named_modules())
            modules = dict(bare.named_modules())
            for name in initialised:
                ema_modules[name].load_state_dict(modules[name].state_dict())
                ema_modules[name].initialized = True
        self.actnorm_ready = True
        return True

    def _all_ranks_agree(self, flag):
        """True only if ``flag`` is True on every process (so all of them skip a step together)."""
        if not self.opt['dist']:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
        return bool(tensor.item() == 1.0)

    def _mean_over_ranks(self, value):
        """The loss all ranks judge a step by (so the guard decides identically everywhere)."""
        if not self.opt['dist']:
            return float(value.detach())
        tensor = value.detach().reshape(1).clone()
        torch.distributed.all_reduce(tensor)
        return float(tensor) / self.opt['world_size']

    def _guarded_nets(self):
        return [self._bare()] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])

    def optimize_parameters(self, current_iter):
        """One training step: the losses of this batch, then an optimizer step the training guard lets through
        (:mod:`srflow_plugin.models.training_guard`); the losses and gradient norm go to ``log_dict``."""
        encoder_trains = self.encoder_trains(current_iter)
        self._set_encoder_trainable(encoder_trains)
        gt, flow_kwargs = self._flow_target()
        self.log_dict = OrderedDict()
        if not self._initialize_actnorm(gt, current_iter):
            self._log_counters(encoder_trains, current_iter)
            return
        if self.guard.snapshot is None and self.guard.enabled:
            self.guard.take_snapshot(self._guarded_nets(), self.optimizer_g, current_iter - 1)

        self.optimizer_g.zero_grad(set_to_none=True)
        l_total, loss_dict = self._losses(gt, flow_kwargs)
        grad_norm = self._guarded_step(l_total, current_iter)
        self.log_dict.update(self.reduce_loss_dict(loss_dict))
        if grad_norm is not None:
            self.log_dict['grad_norm'] = float(grad_norm)
        self._log_counters(encoder_trains, current_iter)

    def _flow_target(self):
        """(the dequantised GT the flow encodes, the flow's extra arguments). With noise conditioning
        (``train.noise_conditioning``) the GT gets noise of a random level per image, and the flow that level."""
        gt = self.cri_nll.dequantize(self.gt)
        flow_kwargs = {}
        if self.noise_max_std is not None:
            noise_std = torch.rand(gt.shape[0], device=gt.device, dtype=gt.dtype) * self.noise_max_std
            gt = gt + noise_std.view(-1, 1, 1, 1) * torch.randn_like(gt)
            flow_kwargs['noise_std'] = noise_std
        return gt, flow_kwargs

    def _losses(self, gt, flow_kwargs):
        """(total loss, OrderedDict of its terms): the NLL of ``gt`` under the flow, plus the pixel loss of the
        temperature-0 image when ``train.pixel_opt`` is set."""
        with mixed_precision(self._bare(), self.train_amp):
            _, nll = self.net_g(self.lq, gt, **flow_kwargs)
        loss_dict = OrderedDict()
        l_total = l_nll = self.cri_nll(nll)
        loss_dict['l_nll'] = l_nll
        if self.cri_pix is not None:
            # the bare network: DDP already prepared this step's gradient reduction in the call above
            with mixed_precision(self._bare(), self.train_amp):
                sr = self._bare().decode(self.lq, temperature=0.0)
            l_pix = self.cri_pix(sr, self.gt)
            l_total = l_total + l_pix
            loss_dict['l_pix'] = l_pix
        return l_total, loss_dict

    def _guarded_step(self, l_total, current_iter):
        """Back-propagates ``l_total`` and applies the step unless the loss or gradient is non-finite or the guard
        calls it a spike. Returns the gradient norm (None when the loss was not finite)."""
        step_ok, grad_norm = self._backward(l_total)
        spike = None
        if step_ok:
            loss_value = self._mean_over_ranks(l_total)
            spike = self.guard.spike_reason(loss_value, float(grad_norm))
        if step_ok and spike is None:
            self._apply_step(current_iter, loss_value, grad_norm)
        else:
            self._skip_step(current_iter, spike)
        if grad_norm is not None:
            self.grad_scaler.update()  # (fp16) a smaller loss scale after an overflow
        return grad_norm

    def _backward(self, l_total):
        """(whether the loss and then the clipped gradient norm are finite on every rank, that norm or None): the
        backward pass runs only for a finite loss."""
        step_ok = self._all_ranks_agree(bool(torch.isfinite(l_total.detach()).all()))
        grad_norm = None
        if step_ok:
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.unscale_(self.optimizer_g)
            params = [p for p in self._bare().parameters() if p.requires_grad]
            max_norm = self.grad_clip_norm if self.grad_clip_norm is not None else float('inf')
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            step_ok = bool(torch.isfinite(grad_norm))  # identical on all ranks: gradients are all-reduced
        return step_ok, grad_norm

    def _apply_step(self, current_iter, loss_value, grad_norm):
        """The optimizer step; rolled back when it leaves non-finite weights or optimizer state, else accepted
        (EMA update, snapshot when due)."""
        self.guard.step_optimizer(self.optimizer_g, current_iter, lambda: self.grad_scaler.step(self.optimizer_g))
        if self.guard.enabled and not tensors_finite(list(self._bare().parameters()) +
                                                     optimizer_tensors(self.optimizer_g)):
            self._roll_back(current_iter, 'non-finite weights or optimizer state after the step')
        else:
            self.guard.accepted(loss_value, float(grad_norm))
            if self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)  # only ever averaged with accepted weights
            if self.guard.snapshot_due(current_iter):
                self.guard.take_snapshot(self._guarded_nets(), self.optimizer_g, current_iter)

    def _skip_step(self, current_iter, spike):
        """No step: the gradients are dropped and the skip (``spike`` None: non-finite) or rejection is logged and
        counted; too many in a row roll back."""
        self.optimizer_g.zero_grad(set_to_none=True)
        if spike is None:
            self.skipped_steps += 1
            message = f'non-finite loss or gradient, step skipped ({self.skipped_steps} skipped so far)'
        else:
            message = f'spike, step rejected: {spike} ({self.guard.rejected_steps + 1} rejected so far)'
        get_root_logger().warning(f'Iteration {current_iter}: {message}.')
        if self.guard.rejected(counted=spike is not None):
            self._roll_back(current_iter, f'{self.guard.max_rejected} consecutive steps not applied')

    def _roll_back(self, current_iter, why):
        snapshot_iter = self.guard.roll_back(self._guarded_nets(), self.optimizer_g, current_iter)
        logger = get_root_logger()
        if snapshot_iter is None:
            logger.warning(f'Iteration {current_iter}: {why}, but there is no snapshot to roll back to.')
        else:
            logger.warning(f'Iteration {current_iter}: {why}; rolled back to the snapshot of iteration '
                           f'{snapshot_iter} (roll-back {self.guard.rollbacks}); learning rates x'
                           f'{self.guard.cooldown_factor:g} until iteration {self.guard.cooldown_until}.')

    def _log_counters(self, encoder_trains, current_iter):
        self.log_dict['skipped_steps'] = self.skipped_steps
        self.log_dict['rejected_steps'] = self.guard.rejected_steps
        self.log_dict['rollbacks'] = self.guard.rollbacks
        self.log_dict['lr_factor'] = self.guard.lr_factor(current_iter)
        self.log_dict['encoder_trains'] = int(encoder_trains)

    # ------------------------------------------------------------------ inference
    def _inference_net(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self._bare()
        net.eval()
        return net

    def test(self, temperature=0.0, generator=None):
        """SR image of the fed LR batch at temperature ``temperature`` into ``self.output``."""
        net = self._inference_net()
        with torch.no_grad():
            self.output = net.decode(self.lq, temperature=temperature, generator=generator)
        self.net_g.train()

    def get_current_visuals(self):
        out_dict = OrderedDict()
        out_dict['lq'] = self.lq.detach().cpu()
        out_dict['result'] = self.output.detach().cpu()
        if hasattr(self, 'gt'):
            out_dict['gt'] = self.gt.detach().cpu()
        return out_dict

    # ------------------------------------------------------------------ validation
    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        if self.opt['rank'] == 0:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Samples every image at every temperature (``val.heats``) ``val.n_sample`` times (see
        :mod:`srflow_plugin.models.validation`); ``nll`` is on the training loss's scale (with the dequantisation
        constant of ``train.nll_opt`` when training). In testing, also writes the metrics CSV."""
        # one scale, named in the log: val.nll_quantization q (or, in training, the loss's) adds log2(q) bits/dim,
        # the NLL of the discrete image; without it, the continuous density at the image (srflow-latent's scale)
        levels = get_option(self.opt, 'val', 'nll_quantization')
        if levels is None and hasattr(self, 'cri_nll'):
            levels = self.cri_nll.quantization
        nll_constant = math.log2(levels) if levels else 0.0
        self.nll_scale = (f'discrete image, q = {levels:g}: continuous + log2(q)' if levels else
                          'continuous density, no dequantisation constant')
        rows = validate(self, self._inference_net(), dataloader, current_iter, tb_logger, save_img, nll_constant)
        self.net_g.train()
        if not self.opt['is_train'] and get_option(self.opt, 'val', 'save_csv') and self.opt['rank'] == 0:
            write_metrics_csv(self.opt, dataloader.dataset.opt['name'], rows,
                              [float(h) for h in get_option(self.opt, 'val', 'heats')])

    # ------------------------------------------------------------------ checkpoints
    def _check_finite(self):
        for label, net in [('net_g', self._bare())] + ([('net_g_ema', self.net_g_ema)]
                                                       if hasattr(self, 'net_g_ema') else []):
            for name, param in net.state_dict().items():
                if param.is_floating_point() and not bool(torch.isfinite(param).all()):
                    raise RuntimeError(f'{label} parameter {name} is not finite; refusing to save a checkpoint.')

    def save(self, epoch, current_iter):
        self._check_finite()
        if hasattr(self, 'net_g_ema'):
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'])
        else:
            self.save_network(self.net_g, 'net_g', current_iter)
        self.save_training_state(epoch, current_iter)

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """As BaseModel's, but written atomically (a killed run leaves no half-written file) and with the options
        that decide the layout (``network_g``), which loading compares with its own options."""
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        save_dict = {}
        for net_, key in zip(nets, keys):
            state_dict = self.get_bare_model(net_).state_dict()
            save_dict[key] = OrderedDict((k, v.cpu()) for k, v in strip_module_prefix(state_dict).items())
        save_dict['network_g'] = deepcopy(self.opt['network_g'])  # the layout, checked when the file is loaded
        atomic_save(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """As BaseModel's, but written atomically, with the count of skipped steps, the guard's counters and, under
        ``srflow_plugin.train``, the data position and generator states (:mod:`srflow_plugin.utils.resume`)."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'skipped_steps': self.skipped_steps,
            'grad_scaler': self.grad_scaler.state_dict(),
            'guard': self.guard.state_dict(),
        }
        position = getattr(self, 'training_position', None)  # set by srflow_plugin.train: exact resume
        if position is not None:
            state['position'] = position.state_dict()
        atomic_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self.skipped_steps = resume_state.get('skipped_steps', 0)
        self.guard.load_state_dict(resume_state.get('guard', {}))
        if getattr(self, 'training_position', None) is not None:
            self.training_position.resume(resume_state.get('position'))
        if resume_state.get('grad_scaler'):
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])
