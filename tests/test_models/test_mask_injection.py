"""The generic mask-token injection (``model.mask_token``) on stock backbones and toy modules.

Covers the layouts found from the mask grid, the refusals with their fixes, the mask's life
time (one forward pass, cleared on exceptions, per model), the build-time dry run leaving no
trace, and the checkpoint contract (stock keys + ``mask_token`` / ``mask_gamma``).
"""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

import a2mim_plugin  # noqa: F401  (registers the plugin)
from a2mim_plugin.models.mask_injection import MaskTokenInjection, apply_mask_token
from a2mim_model_helpers import record_feature

TINY_SWIN = dict(type='SwinTransformer', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                   num_heads=[1, 1, 2, 2]),
                 img_size=64, out_indices=(3, ), stage_cfgs=dict(block_cfgs=dict(window_size=2)))
TINY_VIT = dict(type='VisionTransformer', arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                                    feedforward_channels=64),
                img_size=32, patch_size=8, out_type='featmap')
TINY_RESNET = dict(type='ResNet', depth=18, base_channels=8, out_indices=(3, ))


def _build(cfg: dict) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.build(copy.deepcopy(cfg))


def _mask(batch: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, h, w, generator=gen) < 0.5).float()
    mask[:, 0, 0], mask[:, -1, -1] = 1., 0.  # both kinds of cell in every image
    return mask


# ------------------------------------------------------------------------------------------
# Layouts found from the mask grid
# ------------------------------------------------------------------------------------------
LAYOUT_CASES = {
    # name: (backbone, at, on, input size, expected layout, extra tokens, stride, token shape)
    'resnet_nchw': (TINY_RESNET, 'layer2', 'input', 64, 'NCHW', 0, 4, (1, 8, 1, 1)),
    'convnext_nhwc': (dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1],
                                                      channels=[8, 16, 24, 32]),
                           out_indices=(3, )),
                      'stages.0.0.pointwise_conv1', 'input', 64, 'NHWC', 0, 4, (1, 1, 1, 8)),
    'vit_cls_token': (TINY_VIT, 'layers.1', 'input', 32, 'NLC', 1, 8, (1, 1, 32)),
    'swin_hw_shape': (TINY_SWIN, 'stages.1', 'input', 64, 'NLC', 0, 8, (1, 1, 32)),
}


@pytest.mark.parametrize('name', list(LAYOUT_CASES))
def test_layout_channels_and_stride_found_by_the_dry_run(name):
    cfg, at, on, size, kind, extra, stride, token = LAYOUT_CASES[name]
    backbone = _build(cfg)
    injection = MaskTokenInjection(backbone, at=at, on=on, input_size=size)
    injection.init_weights()  # draws the learnable token (trunc normal)
    assert injection.layout.kind == kind and injection.layout.extra_tokens == extra
    assert injection.dry_run.stride == stride and injection.dry_run.input_size == size
    assert tuple(backbone.mask_token.shape) == token

    # Masked forward: the feature at the point equals apply_mask_token of the plain feature.
    plain_feats = []
    grid = size // stride
    mask = _mask(2, grid, grid)
    x = torch.randn(2, 3, size, size)
    backbone.eval()
    handle = record_feature(backbone.get_submodule(at), on, plain_feats)
    plain_out = backbone(x)
    out = injection.run(backbone, x, mask)
    handle.remove()
    plain, injected = plain_feats[0], plain_feats[1]
    body = slice(extra, None)
    expected = apply_mask_token(plain[:, body], mask, injection.layout, 'learnable',
                                backbone.mask_token, None, False)
    torch.testing.assert_close(injected[:, body], expected, rtol=0, atol=0)
    assert torch.equal(injected[:, :extra], plain[:, :extra])  # class token untouched
    assert not torch.equal(out[-1], plain_out[-1])


def test_swin_token_sequence_is_read_from_hw_shape_not_length():
    """A Swin stage input is (B, L, C) with hw_shape next to it; a non-square grid is read right
    from hw_shape (16x32 at stride 4 for a 64x128 image)."""
    backbone = _build(TINY_SWIN)
    injection = MaskTokenInjection(backbone, at='stages.0', on='input')
    x = torch.randn(2, 3, 64, 128)
    seen = []
    handle = record_feature(backbone.stages[0], 'input', seen)
    injection.run(backbone, x, _mask(2, 16, 32))
    handle.remove()
    assert seen[0].shape == (2, 16 * 32, 16)
    with pytest.raises(ValueError, match=r'32x16 mask does not match the 16x32 feature grid'):
        injection.run(backbone, x, _mask(2, 32, 16))


# ------------------------------------------------------------------------------------------
# Refusals that name the fix
# ------------------------------------------------------------------------------------------
def test_unknown_path_lists_the_top_level_children():
    backbone = _build(TINY_RESNET)
    with pytest.raises(ValueError, match=r"has no module 'layer9'.*'layer1', 'layer2'"):
        MaskTokenInjection(backbone, at='layer9')


def test_unknown_side_names_the_choices():
    with pytest.raises(ValueError, match=r"mask_token.on must be one of \('input', 'output'\)"):
        MaskTokenInjection(_build(TINY_RESNET), at='layer2', on='before')


class _SharedAct(nn.Module):
    """Uses one activation module twice (a shared module)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 4, stride=4)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return (self.act(self.conv(self.act(self.stem(x)))), )


class _TwoStreams(nn.Module):
    """A block whose input is a list of two feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 4, stride=4), nn.Conv2d(3, 4, 4, stride=4)
        self.fuse = _Fuse()

    def forward(self, x):
        return (self.fuse([self.a(x), self.b(x)]), )


class _Fuse(nn.Module):

    def forward(self, feats):
        return feats[0] + feats[1]


class _OddPool(nn.Module):
    """An adaptive pool to 7x7: stride 64/7 is not an integer."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return (self.conv(self.pool(x)), )


def test_shared_module_is_refused():
    with pytest.raises(ValueError, match=r'ran 2 times.*shared.*with_cp'):
        MaskTokenInjection(_SharedAct(), at='act', on='output', input_size=32)


def test_point_inside_a_checkpointed_block_is_refused():
    backbone = _build(dict(TINY_RESNET, with_cp=True))
    with pytest.raises(ValueError, match=r'ran 2 times.*with_cp=False'):
        MaskTokenInjection(backbone, at='layer2.0.conv1', on='input', input_size=64)
    MaskTokenInjection(_build(dict(TINY_RESNET, with_cp=True)), at='layer2', on='input')


def test_list_input_is_refused():
    with pytest.raises(ValueError, match=r"input is a tuple of \['list'\].*several streams"
                                         r".*single \(B, C, h, w\)"):
        MaskTokenInjection(_TwoStreams(), at='fuse', on='input', input_size=32)


def test_non_integer_stride_is_refused():
    with pytest.raises(ValueError, match=r'cannot be aligned with image patches'):
        MaskTokenInjection(_OddPool(), at='conv', on='input', input_size=64)


def test_point_that_cannot_reach_the_output_is_refused():
    """In a class-token ViT, patch tokens after the final norm never reach the output."""
    cfg = dict(TINY_VIT, out_type='cls_token', final_norm=True)
    with pytest.raises(ValueError, match=r'does not reach the backbone.s output'):
        MaskTokenInjection(_build(cfg), at='ln1', on='output')
    MaskTokenInjection(_build(cfg), at='layers.1', on='input')  # an earlier point works


def test_grid_mismatch_names_the_stride_and_model_patch_size():
    backbone = _build(TINY_RESNET)
    injection = MaskTokenInjection(backbone, at='layer3', on='input')  # stride 8
    with pytest.raises(ValueError) as err:
        injection.run(backbone, torch.randn(2, 3, 64, 64), _mask(2, 16, 16))
    msg = str(err.value)
    assert '16x16 mask does not match the 8x8 feature grid' in msg
    assert 'stride 8 for a 64x64 input' in msg and 'model_patch_size=8' in msg
    assert 'stride 4' in msg  # the alternative: a module at the mask's stride


def test_mask_of_wrong_rank_and_point_not_run():
    backbone = _build(TINY_RESNET)
    injection = MaskTokenInjection(backbone, at='layer2', on='input')
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r'expects a \(B, h, w\) mask'):
        injection.run(backbone, x, torch.zeros(2, 1, 16, 16))
    with pytest.raises(RuntimeError, match=r'ran 0 times.*not applied'):
        injection.run(backbone.conv1, x, _mask(2, 16, 16))  # the point is never reached


@pytest.mark.parametrize('on, at', [('input', 'layer2'), ('output', 'layer1')])
def test_point_run_twice_in_one_masked_pass_is_refused(on, at):
    """The build succeeded (the dry run saw the point once), but a forward that calls the
    backbone twice in one masked pass reaches the point twice: refused at run time, and the
    next single pass is the normal masked pass again."""
    backbone = _build(TINY_RESNET)
    injection = MaskTokenInjection(backbone, at=at, on=on)
    injection.init_weights()  # a non-zero token, so masked and plain passes differ
    backbone.eval()
    x, mask = torch.randn(2, 3, 64, 64), _mask(2, 16, 16)
    expected = injection.run(backbone, x, mask)[-1]
    with pytest.raises(RuntimeError, match=r'ran 2 times'):
        injection.run(lambda inp: (backbone(inp), backbone(inp)), x, mask)
    with pytest.raises(RuntimeError, match=r'ran 3 times'):
        injection.run(lambda inp: [backbone(inp) for _ in range(3)], x, mask)
    assert torch.equal(injection.run(backbone, x, mask)[-1], expected)
    assert not torch.equal(backbone(x)[-1], expected)  # the plain pass stays plain


# ------------------------------------------------------------------------------------------
# Life time of the mask: one forward pass, per model, no global state
# ------------------------------------------------------------------------------------------
def test_mask_is_cleared_after_an_exception():
    backbone = _build(TINY_RESNET)
    injection = MaskTokenInjection(backbone, at='layer2', on='input')
    x = torch.randn(2, 3, 64, 64)
    plain = backbone(x)[-1]

    def failing(inp):
        backbone(inp)
        raise KeyError('boom')

    with pytest.raises(KeyError):
        injection.run(failing, x, _mask(2, 16, 16))
    assert injection._mask is None
    assert torch.equal(backbone(x)[-1], plain)  # the next plain call is plain


def test_deepcopy_and_two_models_are_independent():
    student = _build(TINY_RESNET)
    MaskTokenInjection(student, at='layer2', on='input')
    teacher = copy.deepcopy(student)
    other = _build(TINY_SWIN)
    MaskTokenInjection(other, at='patch_embed', on='output')
    assert teacher.mask_injection is not student.mask_injection
    assert teacher.mask_injection._owner is teacher
    with torch.no_grad():
        teacher.mask_token.fill_(3.)
    x = torch.randn(2, 3, 64, 64)
    mask = _mask(2, 16, 16)
    plain_teacher = teacher(x)[-1]
    out_student = student.mask_injection.run(student, x, mask)[-1]
    # While the student runs masked, the teacher and the other model stay plain.
    assert torch.equal(teacher(x)[-1], plain_teacher)
    seen = []

    def student_then_teacher(inp):
        out = student(inp)
        seen.append(teacher(inp)[-1])
        seen.append(other(inp)[-1])
        return out

    student.mask_injection.run(student_then_teacher, x, mask)
    assert torch.equal(seen[0], plain_teacher)
    assert torch.equal(seen[1], other(x)[-1])
    masked_teacher = teacher.mask_injection.run(teacher, x, mask)[-1]
    assert not torch.equal(masked_teacher, out_student)  # its own token (3.0)


# ------------------------------------------------------------------------------------------
# The dry run leaves no trace
# ------------------------------------------------------------------------------------------
def test_dry_run_restores_buffers_modes_grads_and_rng():
    backbone = _build(TINY_RESNET)
    backbone.eval()
    buffers = {n: b.clone() for n, b in backbone.named_buffers()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    MaskTokenInjection(backbone, at='layer2', on='input')
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(b, buffers[n]) for n, b in backbone.named_buffers())
    assert not any(m.training for m in backbone.modules())
    assert all(p.grad is None for p in backbone.parameters())


# ------------------------------------------------------------------------------------------
# Through the algorithm and the checkpoint contract
# ------------------------------------------------------------------------------------------
SWIN_A2MIM = dict(
    type='A2MIM',
    backbone=TINY_SWIN,
    mask_token=dict(at='patch_embed', on='output', mask_init=1e-6),
    neck=dict(type='A2MIMLinearDecoder', in_channels=128, encoder_stride=32),
    head=dict(type='A2MIMHead', loss=dict(type='ElementwiseL1Loss'), fft_weight=0.5,
              fft_focal=True, fft_unmask_replace='mixed'))


def test_algorithm_step_on_a_stock_swin():
    model = _build(SWIN_A2MIM)
    model.init_weights()
    assert type(model.backbone).__name__ == 'SwinTransformer'
    mask = _mask(2, 16, 16)
    samples = [DataSample().set_mask(m) for m in mask]
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    for name in ('mask_token', 'mask_gamma'):
        grad = getattr(model.backbone, name).grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_state_dict_is_the_stock_backbones_plus_the_mask_keys():
    model = _build(SWIN_A2MIM)
    stock = _build(TINY_SWIN)
    keys = set(model.backbone.state_dict())
    assert keys == set(stock.state_dict()) | {'mask_token', 'mask_gamma'}
    weights = {k: v for k, v in model.backbone.state_dict().items()
               if k not in ('mask_token', 'mask_gamma')}
    stock.load_state_dict(weights, strict=True)
    x = torch.randn(2, 3, 64, 64)
    model.backbone.eval(), stock.eval()
    assert torch.equal(model.backbone(x)[-1], stock(x)[-1])


def test_preset_with_a_spec_and_stock_without_one_are_refused():
    preset = dict(SWIN_A2MIM, backbone=dict(type='A2MIMResNet', depth=18, base_channels=8,
                                            mask_layer=1, out_indices=(3, )),
                  neck=dict(type='A2MIMLinearDecoder', in_channels=64, encoder_stride=32))
    with pytest.raises(ValueError, match=r'already injects the mask token.*remove '
                                         r'model.mask_token.*\(ResNet\)'):
        _build(preset)
    stock = {k: v for k, v in SWIN_A2MIM.items() if k != 'mask_token'}
    with pytest.raises(ValueError, match=r"add model.mask_token=dict\(at=.*'patch_embed'"):
        _build(stock)
