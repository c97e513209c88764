"""Memory-saving backpropagation through a chain of invertible layers (the i-RevNet / RevNet technique).

:func:`run_invertible_chain` runs layers that follow the flow-layer contract (``layer(x, cond) -> (y, logdet)``,
``layer.inverse(y, cond) -> (x, -logdet)``) one after the other. With ``memory_saving=True`` and gradients enabled,
no intermediate activation is kept: only the chain's output. Backward walks the layers from the last one,
reconstructs each layer's input from its output with the exact inverse, recomputes that one layer's local graph
and backpropagates through it, so activation memory is that of one layer instead of all of them, for about one
extra forward and one inverse per layer.

Gradients reach the chain's input, the shared conditioning tensor ``cond`` (accumulated over the layers) and every
parameter of the layers that requires one. The parameters are explicit inputs of the autograd node, so
DistributedDataParallel sees them in the graph like on the plain path. The autocast state of the forward call is
restored for the recomputation. A layer with a ``prepare_condition(cond)`` method (the part that depends on
``cond`` alone) prepares it once per backward, for its inverse and its recomputation. Layers must be
deterministic, and invertible in the mode they run in (a layer whose inverse depends on batch statistics must
store them; ActNorm's data-dependent initialisation runs during the forward pass and is not repeated). A layer
with ``inverse_and_recompute(y, cond, input_grad) -> (x, out, logdet)`` (or None) does its inverse and its
recomputation in one pass, sharing what both need: ``FlowStep`` evaluates its coupling's sub-network once for
both, since that sub-network's input is the same before and after the coupling.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn as nn


def run_invertible_chain(layers: Sequence[nn.Module],
                         x: torch.Tensor,
                         cond: Optional[torch.Tensor] = None,
                         memory_saving: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """``x`` through every layer in order; returns (output, summed log-det [B]) like the plain loop.

    Args:
        layers (Sequence[nn.Module]): Layers with the flow-layer contract, all given the same ``cond``.
        x (Tensor): Input of the first layer.
        cond (Tensor | None): Conditioning shared by all layers (a tensor, or None). Other condition types always
            run the plain loop.
        memory_saving (bool): Recompute activations in backward from the layers' inverses instead of storing
            them. Only used when gradients are enabled.
    """
    if not (memory_saving and torch.is_grad_enabled() and (cond is None or torch.is_tensor(cond))):
        logdet = 0
        for layer in layers:
            x, layer_logdet = layer(x, cond)
            logdet = logdet + layer_logdet
        return x, logdet
    params, seen = [], set()
    for layer in layers:
        for param in layer.parameters():
            if param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return _InvertibleChain.apply(tuple(layers), x, cond, *params)


def _grads(outputs, inputs, grads_out):
    """Gradients of ``outputs`` for each of ``inputs`` (None where one does not depend on it)."""
    if not (inputs and outputs):
        return [None] * len(inputs)
    return list(torch.autograd.grad(outputs, inputs, grads_out, allow_unused=True))


def _autocast_state(device_type):
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


class _InvertibleChain(torch.autograd.Function):

    @staticmethod
    def forward(ctx, layers, x, cond, *params):
        ctx.layers = layers
        ctx.params = params
        ctx.device_type = x.device.type
        ctx.autocast_dtype = _autocast_state(ctx.device_type)
        logdet = x.new_zeros(x.shape[0])
        for layer in layers:
            x, layer_logdet = layer(x, cond)
            logdet = logdet + layer_logdet
        ctx.save_for_backward(x, cond)
        return x, logdet

    @staticmethod
    def backward(ctx, grad_out, grad_logdet):
        y, cond = ctx.saved_tensors
        cond_needs_grad = cond is not None and ctx.needs_input_grad[2]
        cond_leaf = cond.detach().requires_grad_(cond_needs_grad) if cond is not None else None
        index_of = {id(p): i for i, p in enumerate(ctx.params)}
        param_grads = [None] * len(ctx.params)
        cond_grad = None
        autocast = torch.autocast(ctx.device_type, dtype=ctx.autocast_dtype or torch.get_autocast_dtype(
            ctx.device_type), enabled=ctx.autocast_dtype is not None)
        for position in reversed(range(len(ctx.layers))):
            layer = ctx.layers[position]
            layer_cond = cond_leaf
            if cond_leaf is not None and hasattr(layer, 'prepare_condition'):
                with torch.enable_grad(), autocast:  # once for the inverse and the recomputation
                    layer_cond = layer.prepare_condition(cond_leaf)
            need_x_grad = position > 0 or ctx.needs_input_grad[1]
            fused = None
            if hasattr(layer, 'inverse_and_recompute'):  # inverse and recomputation sharing work
                with torch.enable_grad(), autocast:
                    fused = layer.inverse_and_recompute(y, layer_cond, need_x_grad)
            if fused is not None:
                x, out, logdet = fused
            else:
                with torch.no_grad(), autocast:
                    x = layer.inverse(y, layer_cond)[0]
                x = x.detach().requires_grad_(need_x_grad)
                with torch.enable_grad(), autocast:
                    out, logdet = layer(x, layer_cond)
            layer_params = [p for p in layer.parameters() if id(p) in index_of]
            inputs = ([x] if need_x_grad else []) + ([cond_leaf] if cond_needs_grad else []) + layer_params
            outputs, grads_out = [], []
            for tensor, grad in ((out, grad_out), (logdet, grad_logdet)):
                if torch.is_tensor(tensor) and tensor.requires_grad:
                    outputs.append(tensor)
                    grads_out.append(grad.expand_as(tensor) if grad is not None else torch.zeros_like(tensor))
            grads = _grads(outputs, inputs, grads_out)
            grad_out = grads.pop(0) if need_x_grad else None
            if cond_needs_grad:
                grad = grads.pop(0)
                if grad is not None:
                    cond_grad = grad if cond_grad is None else cond_grad + grad
            for param, grad in zip(layer_params, grads):
                if grad is not None:
                    i = index_of[id(param)]
                    param_grads[i] = grad if param_grads[i] is None else param_grads[i] + grad
            y = x.detach()
        return (None, grad_out, cond_grad, *param_grads)
