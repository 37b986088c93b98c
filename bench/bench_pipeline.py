"""Throughput of the A2MIM pre-training data pipeline, per worker process, on real JPEG photos.

The pipeline is the shipped one (``configs/_base_/datasets/imagenet_a2mim_cnn-p16.py``, the same
transforms as the other A2MIM configs up to sizes): ``LoadImageFromFile`` (JPEG decode),
``RandomResizedCrop`` (224 px), ``RandomFlip``, ``SimMIMMaskGenerator``, ``PackInputs``, then
``default_collate``. Normalisation is not in the workers: ``SelfSupDataPreprocessor`` does it on
the device. The photos are the bundled demo photos (``a2mim_plugin/datasets/demo_data.py``)
written as random square crops resized to ``--photo-size`` px (JPEG quality 92; ImageNet
photos are mostly around 500 px).

It measures, on one thread (as one DataLoader worker):

* every decode / resize backend combination mmcv offers in the OpenMMLab stack: decode with
  'cv2' (``LoadImageFromFile``'s default) or 'pillow' ('turbojpeg' only if PyTurboJPEG is
  installed), crop-resize with 'pillow' (the shipped configs) or 'cv2';
* the time of each transform and of collating a batch;
* an mmengine-built DataLoader over the same dataset with 1 and 2 workers, with and without
  ``pin_memory`` / ``persistent_workers`` (on this machine pin_memory has no CUDA to pin for).

Example::

    python bench/bench_pipeline.py --images 112 --out bench/results/pipeline_cpu.json
"""
import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

CONFIG = 'configs/_base_/datasets/imagenet_a2mim_cnn-p16.py'


def backends_available() -> List[str]:
    decoders = ['cv2', 'pillow']
    try:
        import turbojpeg  # noqa: F401
        decoders.append('turbojpeg')
    except ImportError:
        pass
    return decoders


def shipped_pipeline() -> List[dict]:
    from mmengine.config import Config
    return Config.fromfile(CONFIG).train_pipeline


def with_backends(pipeline: List[dict], decode: str, resize: str) -> List[dict]:
    out = copy.deepcopy(pipeline)
    for t in out:
        if t['type'] == 'LoadImageFromFile':
            t['imdecode_backend'] = decode
        if t['type'] == 'RandomResizedCrop':
            t['backend'] = resize
    return out


def per_worker(files: List[str], pipeline: List[dict], batch: int, repeats: int) -> dict:
    """Images/s of the pipeline in this process on one thread, and time per transform."""
    from mmengine.dataset import default_collate
    from mmpretrain.registry import TRANSFORMS
    transforms = [TRANSFORMS.build(t) for t in pipeline]
    names = [t['type'] for t in pipeline]
    per_stage: Dict[str, float] = {n: 0. for n in names}
    rates = []
    collate_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        samples = []
        for path in files:
            results = dict(img_path=path)
            for name, transform in zip(names, transforms):
                t0 = time.perf_counter()
                results = transform(results)
                per_stage[name] += time.perf_counter() - t0
            samples.append(results)
            if len(samples) == batch:
                t0 = time.perf_counter()
                default_collate(samples)
                collate_s.append(time.perf_counter() - t0)
                samples = []
        rates.append(len(files) / (time.perf_counter() - start))
    n = len(files) * repeats
    stages = {k: v / n * 1e3 for k, v in per_stage.items()}
    stages['default_collate'] = statistics.median(collate_s) / batch * 1e3 if collate_s else 0.
    return dict(images_per_s=statistics.median(rates), ms_per_image=stages)


def dataloader_rate(root: Path, pipeline: List[dict], batch: int, workers: int,
                    pin_memory: bool, persistent: bool, epochs: int,
                    device: Optional[torch.device] = None) -> float:
    """Images/s of an mmengine-built DataLoader, after its first batch; with ``device``, every
    batch's images are also copied there (``non_blocking`` when pinned), as the runner's data
    preprocessor does."""
    from mmengine.runner import Runner
    cfg = dict(batch_size=batch, num_workers=workers, persistent_workers=persistent,
               pin_memory=pin_memory, sampler=dict(type='DefaultSampler', shuffle=True),
               collate_fn=dict(type='default_collate'),
               dataset=dict(type='CustomDataset', data_root=str(root), data_prefix='train',
                            with_label=False, pipeline=pipeline))
    if workers:
        cfg['prefetch_factor'] = 2
    loader = Runner.build_dataloader(cfg, seed=0)
    count, start = 0, None
    for _ in range(epochs):
        for data in loader:
            if start is None:  # the first batch includes starting the workers
                start = time.perf_counter()
                continue
            if device is not None:
                data['inputs'].to(device, non_blocking=pin_memory)
            count += len(data['inputs'])
    if device is not None and device.type == 'cuda':
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=112, help='photos (multiple of 14)')
    parser.add_argument('--photo-size', type=int, default=500)
    parser.add_argument('--root', default='/tmp/a2mim_pipeline_photos')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--dataloader-epochs', type=int, default=3)
    parser.add_argument('--out', default='bench/results/pipeline_cpu.json')
    args = parser.parse_args(argv)

    import cv2
    import logging

    import a2mim_plugin  # noqa: F401
    from a2mim_plugin.datasets import make_demo_imagenet
    from a2mim_plugin.datasets.demo_data import DEMO_PHOTOS
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one DataLoader worker = one core

    per_photo = max(1, args.images // len(DEMO_PHOTOS))
    root = make_demo_imagenet(Path(args.root) / f'{args.photo_size}px_{per_photo}',
                              crops_per_photo=per_photo, crop_size=args.photo_size)
    files = sorted(str(p) for p in (root / 'train').glob('*/*.JPEG'))
    mean_kib = statistics.mean(Path(f).stat().st_size for f in files) / 1024
    base = shipped_pipeline()
    print(f'# A2MIM pre-training pipeline ({CONFIG}), {len(files)} JPEGs of '
          f'{args.photo_size}x{args.photo_size} px ({mean_kib:.0f} KiB), '
          f'{platform.machine()}, 1 thread per worker')
    results = dict(config=CONFIG, photos=len(files), photo_px=args.photo_size,
                   mean_kib=mean_kib, decoders=backends_available(), per_worker=[],
                   dataloader=[], command=' '.join(sys.argv))
    print('\n| decode | crop-resize | img/s per worker | ms/img: ' +
          ' | '.join(t['type'] for t in base) + ' | collate |')
    print('|---|---|---|' + '---|' * (len(base) + 1))
    for decode in results['decoders']:
        for resize in ('pillow', 'cv2'):
            r = per_worker(files, with_backends(base, decode, resize), args.batch_size,
                           args.repeats)
            r.update(decode=decode, resize=resize, shipped=(decode, resize) == ('cv2',
                                                                                'pillow'))
            results['per_worker'].append(r)
            print(f"| {decode} | {resize}{' (shipped)' if r['shipped'] else ''} | "
                  f"{r['images_per_s']:.0f} | " +
                  ' | '.join(f'{v:.2f}' for v in r['ms_per_image'].values()) + ' |',
                  flush=True)
    print('\n| DataLoader workers | pin_memory | persistent_workers | img/s |')
    print('|---|---|---|---|')
    for workers, pin, persistent in ((1, False, False), (1, True, True), (2, True, True)):
        rate = dataloader_rate(root, base, args.batch_size, workers, pin, persistent,
                               args.dataloader_epochs)
        results['dataloader'].append(dict(workers=workers, pin_memory=pin,
                                          persistent_workers=persistent, images_per_s=rate))
        print(f'| {workers} | {pin} | {persistent} | {rate:.0f} |', flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f'\nJSON: {args.out}')


if __name__ == '__main__':
    main()
