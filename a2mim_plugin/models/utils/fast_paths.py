"""Optional fast paths for a built model, off unless a config turns them on.

Each one keeps the model's parameters, buffers and checkpoint keys; only how the forward pass is
computed (or how weights are laid out in memory) changes. Whether one pays off depends on the
device, so ``bench/gpu_check.sh`` measures them and says which to turn on.

* :func:`use_sdpa_attention`: ``F.scaled_dot_product_attention`` with the relative position bias
  (and Swin's shift mask) as an additive ``attn_mask``, instead of the manual
  ``softmax(q k^T + bias) v`` of MMPretrain's ``BEiTAttention`` and ``WindowMSA`` (Swin).
  The instances get an SDPA ``forward``; the stock classes are untouched.
* :func:`use_channels_last`: 4-D weights in ``torch.channels_last`` memory format (CNNs).
"""
import types
from typing import Optional

import torch
import torch.nn.functional as F
from mmpretrain.models.utils.attention import BEiTAttention, WindowMSA
from torch import nn


def _attn_dropout(module: nn.Module) -> float:
    return module.attn_drop.p if module.training else 0.


def _beit_sdpa_forward(self: BEiTAttention, x: torch.Tensor,
                       rel_pos_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``BEiTAttention.forward`` computed with ``F.scaled_dot_product_attention``."""
    B, N, C = x.shape
    if self.bias == 'qv_bias':
        k_bias = torch.zeros_like(self.v_bias, requires_grad=False)
        qkv = F.linear(x, self.qkv.weight, torch.cat((self.q_bias, k_bias, self.v_bias)))
    else:
        qkv = self.qkv(x)
    q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    bias = None
    if self.relative_position_bias_table is not None:
        tokens = self.window_size[0] * self.window_size[1] + 1
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
            tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
    if rel_pos_bias is not None:  # the backbone's shared relative position bias
        bias = rel_pos_bias if bias is None else bias + rel_pos_bias
    if bias is not None:
        bias = bias.to(q.dtype)
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                       dropout_p=_attn_dropout(self), scale=self.scale)
    return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, C)))


def _window_sdpa_forward(self: WindowMSA, x: torch.Tensor,
                         mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``WindowMSA.forward`` computed with ``F.scaled_dot_product_attention``.

    ``x`` is (num_windows * B, N, C); ``mask`` (num_windows, N, N) is Swin's shift mask.
    """
    B_, N, C = x.shape
    q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(
        2, 0, 3, 1, 4).unbind(0)
    bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(
        N, N, -1).permute(2, 0, 1).unsqueeze(0)  # 1, nH, N, N
    if mask is not None:  # per window: (B, nW, nH, N, N) -> (B * nW, nH, N, N)
        windows = mask.shape[0]
        bias = (bias.unsqueeze(0) + mask.unsqueeze(1).unsqueeze(0)).expand(
            B_ // windows, -1, -1, -1, -1).reshape(B_, self.num_heads, N, N)
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                       dropout_p=_attn_dropout(self), scale=self.scale)
    return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B_, N, C)))


_SDPA_FORWARDS = {BEiTAttention: _beit_sdpa_forward, WindowMSA: _window_sdpa_forward}


def use_sdpa_attention(model: nn.Module) -> int:
    """Compute every ``BEiTAttention`` and ``WindowMSA`` of ``model`` with SDPA.

    Only instances of exactly these classes are switched (subclasses such as MixMIM's window
    attention keep their own forward). Parameters and keys stay the same; the fp32 results
    agree with the manual path to rounding (``tests/test_models/test_fast_paths.py``).

    Args:
        model: a built model; changed in place.

    Returns:
        The number of attention modules switched.
    """
    switched = 0
    for module in model.modules():
        forward = _SDPA_FORWARDS.get(type(module))
        if forward is not None:
            module.forward = types.MethodType(forward, module)
            switched += 1
    return switched


def use_channels_last(model: nn.Module) -> int:
    """Store the 4-D parameters and buffers of ``model`` (convolution weights) channels-last.

    The parameter objects stay the same (an optimizer built before keeps them); convolutions
    then run in NHWC, converting their NCHW input once.

    Returns:
        The number of 4-D parameters now channels-last.
    """
    model.to(memory_format=torch.channels_last)
    return sum(1 for p in model.parameters()
               if p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last))
