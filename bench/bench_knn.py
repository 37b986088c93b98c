"""What the k-NN hook costs: plain-backbone feature extraction against a training step.

One process, one model (a shipped pre-training config at --img-size): a training step
(data preprocessor, masked forward, loss, backward, optimizer step, as ``model.train_step``)
and a k-NN feature extraction (data preprocessor, plain backbone in eval mode without
gradient, pooling, L2 norm, as ``KNNEvalHook``) on the same synthetic batch, alternated
(the order flips every round) so both see the same machine load. Reports the median
images/s of each and the share of a run's time the hook takes at given settings:

    share = (bank + queries) / extract_ips / (interval x train_images / train_ips)

Data loading is left out of both (the hook loads and decodes its images as training does).

    python bench/bench_knn.py --device cpu --batch-size 8 --rounds 5
    python bench/bench_knn.py --device cuda --batch-size 128 --amp bf16
"""
import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = 'configs/a2mim/a2mim_resnet50_8xb256-coslr-300e_in1k.py'
IMAGENET_TRAIN = 1281167


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--rounds', type=int, default=5, help='timed rounds')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', choices=('none', 'fp16', 'bf16'), default='none')
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads')
    parser.add_argument('--bank', type=int, default=100000, help='bank images (share)')
    parser.add_argument('--queries', type=int, default=50000, help='query images (share)')
    parser.add_argument('--interval', type=int, default=10, help='epochs between evaluations')
    parser.add_argument('--out', type=Path, default=None, help='write the numbers as JSON')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.registry import init_default_scope
    import a2mim_plugin  # noqa: F401
    from a2mim_plugin.evaluation import backbone_features
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    device = torch.device(args.device)
    cfg = peers.load_config(str(REPO_ROOT / args.config), args.img_size)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    optim_wrapper = peers.build_optim_wrapper(model, cfg, args.amp, device)
    batch = peers.synthetic_batch(cfg, args.batch_size, args.img_size, seed=0)

    def train_step() -> None:
        model.train()
        model.train_step(batch, optim_wrapper)

    def extract() -> None:
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, enabled=args.amp != 'none',
                                             dtype=torch.bfloat16 if args.amp == 'bf16'
                                             else torch.float16):
            data = model.data_preprocessor(batch, False)
            backbone_features(model, data['inputs'])

    times = {'train': [], 'extract': []}
    steps = {'train': train_step, 'extract': extract}
    for round_ in range(args.warmup + args.rounds):
        order = ('train', 'extract') if round_ % 2 == 0 else ('extract', 'train')
        for name in order:
            peers.sync(device)
            start = time.perf_counter()
            steps[name]()
            peers.sync(device)
            if round_ >= args.warmup:
                times[name].append(time.perf_counter() - start)
    ips = {name: args.batch_size / statistics.median(t) for name, t in times.items()}
    eval_s = (args.bank + args.queries) / ips['extract']
    epochs_s = args.interval * IMAGENET_TRAIN / ips['train']
    result = dict(
        config=args.config, img_size=args.img_size, batch_size=args.batch_size,
        device=str(device), amp=args.amp, threads=torch.get_num_threads(),
        machine=f'{platform.machine()} {platform.processor() or ""}'.strip(),
        train_images_per_s=round(ips['train'], 2), extract_images_per_s=round(ips['extract'], 2),
        ratio=round(ips['extract'] / ips['train'], 2), bank=args.bank, queries=args.queries,
        interval_epochs=args.interval, hook_share_percent=round(100 * eval_s / epochs_s, 3))
    print(f"{args.config} at {args.img_size} px, batch {args.batch_size}, {device}, "
          f"amp {args.amp}, {result['threads']} threads")
    print(f"training step:      {ips['train']:.2f} images/s (median of {args.rounds})")
    print(f"k-NN extraction:    {ips['extract']:.2f} images/s ({result['ratio']} x training)")
    print(f"hook share: ({args.bank} + {args.queries}) / {ips['extract']:.2f} = {eval_s:.0f} s "
          f"per evaluation vs {args.interval} x {IMAGENET_TRAIN} / {ips['train']:.2f} = "
          f"{epochs_s:.0f} s of training: {result['hook_share_percent']} %")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + '\n')
    return result


if __name__ == '__main__':
    main()
