"""A small ImageNet-style folder of real photographs for the demo and the tests.

The photographs are the ones scikit-image ships in ``skimage/data`` (public-domain or
CC-licensed images listed in that folder's README.txt); nothing is downloaded.
"""
import os
from pathlib import Path
from typing import Dict, Union

import numpy as np

# Photographs shipped inside the scikit-image wheel (no download needed).
DEMO_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg', 'ihc.png',
               'motorcycle_left.png', 'retina.jpg', 'rocket.jpg', 'camera.png', 'brick.png',
               'grass.png', 'gravel.png', 'moon.png', 'coins.png')


def load_demo_photos() -> Dict[str, np.ndarray]:
    """The demo photographs as (H, W, 3) uint8 RGB arrays, keyed by their stem."""
    import skimage
    from skimage import io

    data_dir = Path(skimage.__file__).parent / 'data'
    photos = {}
    for name in DEMO_PHOTOS:
        image = io.imread(data_dir / name)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos[Path(name).stem] = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    return photos


def make_demo_imagenet(root: Union[str, os.PathLike], crops_per_photo: int = 24,
                       crop_size: int = 160, seed: int = 0) -> Path:
    """Write random square crops of the demo photos as ``root/train/<photo>/<n>.JPEG``.

    Each crop covers 25% to 100% of the shorter side of its photo and is resized to
    ``crop_size``. Existing folders with the expected number of files are kept as they are.

    Args:
        root: dataset root.
        crops_per_photo: crops written per photograph.
        crop_size: side of the saved crops in pixels.
        seed: seed of the crop positions.

    Returns:
        The dataset root.
    """
    from PIL import Image

    root = Path(root)
    train = root / 'train'
    expected = crops_per_photo * len(DEMO_PHOTOS)
    if train.is_dir() and len(list(train.glob('*/*.JPEG'))) == expected:
        return root
    rng = np.random.default_rng(seed)
    for stem, image in load_demo_photos().items():
        out_dir = train / stem
        out_dir.mkdir(parents=True, exist_ok=True)
        height, width = image.shape[:2]
        for k in range(crops_per_photo):
            side = int(rng.uniform(0.25, 1.0) * min(height, width))
            top = int(rng.integers(0, height - side + 1))
            left = int(rng.integers(0, width - side + 1))
            crop = Image.fromarray(image[top:top + side, left:left + side])
            crop = crop.resize((crop_size, crop_size), Image.BICUBIC)
            crop.save(out_dir / f'{stem}_{k:03d}.JPEG', quality=92)
    return root


def make_demo_classification(root: Union[str, os.PathLike], train_per_photo: int = 24,
                             val_per_photo: int = 8, crop_size: int = 96,
                             seed: int = 1) -> Path:
    """A "which photo is this crop from" classification set of the demo photos.

    Writes ``root/train/<photo>/<n>.JPEG`` and a held-out ``root/val/<photo>/<n>.JPEG``: random
    square crops (25% to 100% of the shorter side, resized to ``crop_size``), the validation
    crops drawn after the training ones from the same seeded generator, so they are new crops
    (they may overlap training crops of the same photo). Class ``k`` is the k-th photo stem in
    sorted order (how ``CustomDataset`` numbers sub-folders). Folders that already hold the
    expected number of files are kept as they are.

    Args:
        root: dataset root.
        train_per_photo: training crops per photograph.
        val_per_photo: held-out crops per photograph.
        crop_size: side of the saved crops in pixels.
        seed: seed of the crop positions.

    Returns:
        The dataset root.
    """
    from PIL import Image

    root = Path(root)
    counts = dict(train=train_per_photo, val=val_per_photo)
    if all((root / split).is_dir()
           and len(list((root / split).glob('*/*.JPEG'))) == n * len(DEMO_PHOTOS)
           for split, n in counts.items()):
        return root
    rng = np.random.default_rng(seed)
    for stem, image in load_demo_photos().items():
        height, width = image.shape[:2]
        for split, count in counts.items():
            out_dir = root / split / stem
            out_dir.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                side = int(rng.uniform(0.25, 1.0) * min(height, width))
                top = int(rng.integers(0, height - side + 1))
                left = int(rng.integers(0, width - side + 1))
                crop = Image.fromarray(image[top:top + side, left:left + side])
                crop = crop.resize((crop_size, crop_size), Image.BICUBIC)
                crop.save(out_dir / f'{stem}_{k:03d}.JPEG', quality=92)
    return root
