# ImageNet-1K fine-tuning of the A2MIM / SimMIM ViTs with the BEiT (SimMIM) protocol, as the
# official `vit_*_p16_swin_ft_simmim_*` configs (defaults here: ViT-S, 8 x 128 = 1024, 100 ep).
#
# Backbone: MMPretrain's stock BEiTViT with the pre-training ViT's absolute + per-layer relative
# position embeddings and layer scale 0.1; the pre-trained final norm is dropped
# (final_norm=False) and a fresh norm (`ln2`) is put on the mean of the patch tokens
# (out_type='avg_featmap'), as the official fc_norm. Data: RandomResizedCrop 224 bicubic,
# flip, RandAugment (rand-m9-mstd0.5-inc1), RandomErasing 0.25; test Resize 256 + CenterCrop
# 224 (MMPretrain's swin_224 data base). Mixup 0.8 / CutMix 1.0, label smoothing 0.1.
# AdamW 2.5e-3 x 1024 / 256 = 1e-2 (wd 0.05) with layer-wise LR decay 0.65, 20 warm-up epochs
# from ~0 then a per-iteration cosine to 1e-6, grad clip 5, fp16.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='BEiTViT',
        arch='small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        use_abs_pos_emb=True,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        layer_scale_init_value=0.1,
        out_type='avg_featmap',
        final_norm=False,
        # The pooled-token norm ``ln2`` (fc_norm) is new by design; the pre-trained final
        # norm ``ln1`` is not used (final_norm=False), as the official protocol.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='',
            prefix='backbone.',
            strict=True,
            allow_missing=[r'^ln2\.'],
            ignore_unexpected=[r'^mask_token$', r'^mask_gamma$', r'^ln1\.'])),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02)]),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=2.5e-3 * 1024 / 256,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    # Layer-wise decay: patch embedding / cls / pos get 0.65^(L+1), block i 0.65^(L-i), the
    # head (and the new fc norm) 1 - the same depths as the official constructor.
    constructor='LearningRateDecayOptimWrapperConstructor',
    # Official no-decay keys: norm, bias, cls_token, pos_embed, gamma (substring match; 'bias'
    # also covers q_bias/v_bias and the relative-position-bias tables).
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            'ln': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
            'gamma': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=True,
        begin=0,
        end=20,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=20,
        end=100,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# The LR is written for 1024 images per optimizer step (ViT-S 8 x 128, ViT-B 4 x 128 x 2, ViT-L
# 8 x 64 x 2): TotalBatchCheckHook warns when a run is launched with another total and
# --auto-scale-lr is off.
default_hooks = dict(
    # Long runs (docs/long_runs.md): append dict(type='AutoResumeHook') and, last,
    # dict(type='PreemptionHook') to custom_hooks to save on SIGTERM/SIGUSR1 and resume
    # with the same command (the pre-training configs have both).
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    total_batch_check=dict(type='TotalBatchCheckHook', total_batch=1024),
    # NumPy drop-path rates of stock ViTs -> Python floats, plain param groups: no graph
    # break under --cfg-options compile=True (bench/README.md, "torch.compile").
    compile_ready=dict(type='CompileReadyHook'),
    # Off until bench/gpu_check.sh says otherwise: sdpa_attention (BEiT / Swin attention),
    # channels_last (CNNs); fused AdamW is optim_wrapper.optimizer.fused=True.
    fast_paths=dict(type='FastPathsHook'))

randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=1024)
