"""Token-sequence outputs folded into the decoder's map (MlpMixer's (B, C, L), a raw ViT's
(B, 1 + L, C)), the build-time layout decision and its errors."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import a2mim_plugin  # noqa: F401  (registers the plugin)
from a2mim_plugin.models.utils.latent_map import LatentLayout, find_sequence_layout

VIT = dict(type='VisionTransformer', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                               feedforward_channels=64),
           img_size=64, patch_size=16, out_type='featmap')
MIXER = dict(type='MlpMixer', arch=dict(embed_dims=32, num_layers=2, tokens_mlp_dims=16,
                                        channels_mlp_dims=64), img_size=64)


def _a2mim(backbone: dict, at: str = 'patch_embed', in_channels: int = 32,
           encoder_stride: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='A2MIM', backbone=copy.deepcopy(backbone), mask_token=dict(at=at, on='output'),
        neck=dict(type='A2MIMLinearDecoder', in_channels=in_channels,
                  encoder_stride=encoder_stride),
        head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.5)))
    model.init_weights()
    return model


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    mask = (torch.rand(2, 4, 4, generator=gen) < 0.5).float()
    return x, [DataSample().set_mask(m) for m in mask], mask


def test_raw_vit_tokens_give_the_featmap_loss():
    """out_type='raw' (B, 1 + L, C) drops the class token and folds to the featmap layout:
    the same loss and gradients as out_type='featmap' on the same weights."""
    featmap, raw = _a2mim(VIT), _a2mim(dict(VIT, out_type='raw'))
    raw.load_state_dict(featmap.state_dict())
    assert featmap.latent_layout == LatentLayout()
    assert raw.latent_layout == LatentLayout('NLC', 1, 16)
    x, samples, _ = _batch()
    losses = [sum(m.loss(x, samples).values()) for m in (featmap, raw)]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)
    for loss in losses:
        loss.backward()
    for (name, p), q in zip(featmap.named_parameters(), raw.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-8, msg=name)


def test_mlp_mixer_channels_first_tokens_are_reshaped_to_the_grid():
    model = _a2mim(MIXER)
    assert model.latent_layout == LatentLayout('NCL', 0, 16)
    x, _, mask = _batch()
    model.eval()
    out = model.backbone(x)[-1]  # (B, C, L)
    assert out.shape == (2, 32, 16)
    folded = model.latent_layout.to_map(out, x.shape[-2:])
    assert torch.equal(folded, out.reshape(2, 32, 4, 4))
    pred = model.reconstruct(x, mask)['pred']
    assert pred.shape == x.shape and torch.isfinite(pred).all()


def test_map_outputs_pass_through_untouched():
    feats = torch.randn(2, 8, 4, 4)
    assert LatentLayout().to_map(feats, (64, 64)) is feats


@pytest.mark.parametrize('neck, message', [
    (dict(in_channels=48), r'model.neck.in_channels=48 but .*MlpMixer returns tokens of shape '
                           r"\('B', 32, 16\).*set model.neck.in_channels=32"),
    (dict(encoder_stride=8), r'model.neck.encoder_stride=8 but .*MlpMixer returns tokens .*'
                             r'set model.neck.encoder_stride=16'),
])
def test_sequence_output_with_a_wrong_decoder_names_the_key(neck, message):
    with pytest.raises(ValueError, match=message):
        _a2mim(MIXER, **neck)


def test_pooled_output_is_refused_with_the_options_that_keep_the_map():
    with pytest.raises(ValueError, match=r"not a feature map.*\('B', 32\).*out_type='featmap'"):
        _a2mim(dict(VIT, out_type='cls_token'), at='layers.0')


def test_ambiguous_sequence_is_refused_and_a_mismatch_at_run_time_is_named():
    with pytest.raises(ValueError, match=r'reads both as \(B, C, L\) and as \(B, L, C\)'):
        find_sequence_layout((16, 16), 16, 16, 16)
    layout = LatentLayout('NLC', 1, 16)
    with pytest.raises(ValueError, match=r'does not hold the 4x8 patch grid of a 64x128 input'):
        layout.to_map(torch.randn(2, 17, 32), (64, 128))
    folded = layout.to_map(torch.randn(2, 33, 32), (64, 128))
    assert folded.shape == (2, 32, 4, 8)
