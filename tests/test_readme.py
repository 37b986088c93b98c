"""The README and the docs pages: published numbers, the config example, size and links.

The README's published-row table holds the numbers of the published table; the published table
is kept in the repository (``tests/data/published_results.yaml``, copied from OpenMixup's A2MIM
results README), so the check runs in any checkout. Where the copy of that README given to the
project sits beside the checkout (``../shared/seeds``), the data file is also checked against
it. The config table of ``docs/configs.md`` names the same rows; the README's ten-line config
example builds and trains one step; the README stays short and every relative link of the
README and of ``docs/`` reaches a file (and a heading, for ``#anchor`` links).
"""
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

import a2mim_plugin  # noqa: F401  (registers the plugin)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / 'docs'
README_MAX_BYTES = 12 * 1024  # the front page stays short; the reference lives in docs/
PUBLISHED = Path(__file__).resolve().parent / 'data' / 'published_results.yaml'
SEEDS = REPO.parent / 'shared' / 'seeds' / 'a2mim_results_readme.md'
BACKBONES = {'ViT-S': 'ViT-Small', 'ViT-B': 'ViT-Base', 'ViT-L': 'ViT-Large'}

# (method, backbone, pre-training epochs, fine-tuning epochs) -> published row
Key = Tuple[str, str, int, int]


def _rows(text: str):
    for line in text.splitlines():
        if line.startswith('|') and not re.match(r'^\|[\s:|-]+\|$', line):
            yield [cell.strip() for cell in re.split(r'(?<!\\)\|', line.strip().strip('|'))]


def _published() -> Dict[Key, dict]:
    rows = yaml.safe_load(PUBLISHED.read_text())['rows']
    table = {(r['method'], r['backbone'], r['pretrain_epochs'], r['finetune_epochs']): r
             for r in rows}
    assert len(table) == len(rows), 'two published rows share a key'
    return table


def _link(cell: str) -> str:
    """The target of the one markdown link in a table cell."""
    return re.search(r'\]\(([^)]+)\)', cell).group(1)


def _epochs(cell: str) -> int:
    """Epochs of the config linked in a table cell (``...-300e_in1k.py``)."""
    return int(re.search(r'-(\d+)e_in1k\.py$', _link(cell)).group(1))


def _readme_rows() -> List[List[str]]:
    """Backbone | Method | Epochs (pre-train / fine-tune) | Top-1 | pre-training | fine-tuning."""
    section = (REPO / 'README.md').read_text().split('## Published rows')[1].split('\n## ')[0]
    return [cells for cells in _rows(section) if cells[0] != 'Backbone']


def _readme_key(cells: List[str]) -> Tuple[Key, Optional[str]]:
    """The published-row key of a README row and the protocol its method cell names; the
    epochs cell must be the epochs of the two linked configs."""
    backbone, method, epochs, _, pre, fine = cells
    assert epochs == f'{_epochs(pre)} / {_epochs(fine)}', (backbone, method, epochs)
    protocol = re.search(r'\((RSB A\d)\)', method)
    return (('SimMIM' if method.startswith('SimMIM') else 'A2MIM',
             BACKBONES.get(backbone, backbone), _epochs(pre), _epochs(fine)),
            protocol and protocol.group(1))


def test_published_numbers_are_copied_from_the_published_table():
    """Every number of the README is the published one of the same row, and every published
    row is in the README; the row without a number is the one the published table lacks."""
    published = _published()
    rows = _readme_rows()
    assert len(rows) == 20
    seen = set()
    for cells in rows:
        key, protocol = _readme_key(cells)
        top1 = cells[3]
        if not re.fullmatch(r'\d+\.\d', top1):
            assert top1 == '—¹' and key not in published, (key, top1)
            continue
        assert key in published, f'{key} is not a row of {PUBLISHED.name}'
        assert top1 == published[key]['top1'], (key, top1)
        if protocol is not None:
            assert protocol == published[key]['protocol'], key
        assert key not in seen, f'{key} twice in the README'
        seen.add(key)
    assert seen == set(published), sorted(set(published) - seen)
    assert len(seen) == 19


def _seed_rows() -> Dict[Key, dict]:
    """The ImageNet-1K rows of the seeds' results README, without the conflict side that
    the data file leaves out (between ``<<<<<<< HEAD`` and ``=======``)."""
    lines, skipping = [], False
    for line in SEEDS.read_text().split('### ImageNet-100')[0].splitlines():
        if line.startswith('<<<<<<<'):
            skipping = True
        elif line.startswith('======='):
            skipping = False
        elif not skipping and not line.startswith('>>>>>>>'):
            lines.append(line)
    rows = {}
    for cells in _rows('\n'.join(lines)):
        if cells[0] in ('SimMIM', 'A2MIM'):  # Method | Backbone | Epoch | Top-1 | ...
            method, backbone, epochs, top1 = cells[:4]
        elif re.fullmatch(r'\d+', cells[1]):  # Backbone | Epoch | Top-1 | ... (A2MIM only)
            method, (backbone, epochs, top1) = 'A2MIM', cells[:3]
        else:
            continue
        text = ' '.join(cells)
        finetune = int(re.search(r'_ep(\d+)\.py', cells[-2]).group(1))  # fine-tuning config
        protocol = re.search(r'RSB A\d', text)
        rows[(method, backbone, int(epochs), finetune)] = dict(
            method=method, backbone=backbone, pretrain_epochs=int(epochs),
            finetune_epochs=finetune, protocol=protocol.group(0) if protocol else 'BEiT',
            top1=top1)
    return rows


@pytest.mark.skipif(not SEEDS.exists(), reason='checks the in-repo copy against the seeds, '
                    'which live in ../shared beside the development checkout')
def test_published_table_is_a_faithful_copy_of_the_seeds():
    published = yaml.safe_load(PUBLISHED.read_text())
    seeds = _seed_rows()
    assert {k: dict(v) for k, v in _published().items()} == seeds
    assert 'openmixup' in published['source'] and 'selfsup/a2mim/README.md' in published['source']


def test_linked_configs_exist():
    for cells in _readme_rows():
        for cell in cells[4:]:
            assert (REPO / _link(cell)).is_file(), _link(cell)


def _configs_page_rows() -> List[Tuple[str, Path, Path]]:
    """(backbone, pre-training config, fine-tuning config) of the table in docs/configs.md."""
    section = (DOCS / 'configs.md').read_text().split('## Published rows')[1].split('\n## ')[0]
    return [(cells[0], (DOCS / _link(cells[2])).resolve(), (DOCS / _link(cells[3])).resolve())
            for cells in _rows(section) if cells[0] != 'Backbone']


def test_configs_page_names_the_configs_of_the_readme_rows():
    """The long table of docs/configs.md (file names, no numbers) is the README's rows."""
    readme = [(cells[0], (REPO / _link(cells[4])).resolve(), (REPO / _link(cells[5])).resolve())
              for cells in _readme_rows()]
    assert _configs_page_rows() == readme


def test_readme_config_example_trains_one_step():
    """The README's ten-line config builds and trains: the stock backbone takes the token at
    the named point, the stride there is the example's ``model_patch_size``, the mask the
    example's generator makes fits the grid, and the token gets a gradient. Only the Swin
    width and depth are shrunk (and the decoder's ``in_channels`` with them)."""
    section = (REPO / 'README.md').read_text().split('## A config in ten lines')[1]
    code = section.split('```python\n')[1].split('```')[0]
    assert len(code.strip().splitlines()) <= 10
    example = Config.fromstring(code, '.py')
    assert example.custom_imports.imports == ['a2mim_plugin']
    model_cfg, mask_cfg = example.model, example.train_pipeline[-2]
    assert model_cfg.backbone.type == 'SwinTransformer' and model_cfg.backbone.arch == 'base'
    # Swin-B: 128 channels after the patch embedding, 8x after three merges, stride 32.
    assert (model_cfg.neck.in_channels, model_cfg.neck.encoder_stride) == (128 * 8, 32)

    model_cfg.backbone.arch = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    model_cfg.neck.in_channels = 16 * 8
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    assert type(model.backbone).__name__ == 'SwinTransformer'
    assert model.mask_injection.dry_run.stride == mask_cfg.model_patch_size == 4

    generator = TRANSFORMS.build(mask_cfg)
    size = mask_cfg.input_size
    masks = [torch.as_tensor(generator(dict(img=np.zeros((size, size, 3), np.uint8)))['mask'])
             for _ in range(2)]
    assert masks[0].shape == (size // 4, size // 4)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    model.train()
    losses = model.loss(x, [DataSample().set_mask(m) for m in masks])
    assert set(losses) == {'loss_spatial', 'loss_fourier'}
    total = sum(losses.values())
    assert torch.isfinite(total) and total > 0
    total.backward()
    assert model.backbone.mask_token.grad.abs().sum() > 0


def test_readme_is_short_and_names_the_two_commands():
    text = (REPO / 'README.md').read_text()
    size = len(text.encode())
    assert size <= README_MAX_BYTES, (
        f'README.md is {size} bytes (limit {README_MAX_BYTES}): move the detail to a docs/ page')
    assert 'make demo' in text and 'make test' in text


def _markdown_files() -> List[Path]:
    return [REPO / 'README.md'] + sorted(DOCS.glob('*.md'))


def _outside_code(text: str) -> str:
    """The text without fenced code blocks and inline code spans."""
    text = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    return re.sub(r'`[^`\n]*`', '', text)


def _links(path: Path) -> List[str]:
    """Relative link and image targets of a markdown file (no URLs)."""
    targets = re.findall(r'\]\(([^)\s]+)\)', _outside_code(path.read_text()))
    return [t for t in targets if not re.match(r'^[a-z]+:', t)]


def _anchors(path: Path) -> set:
    """GitHub's anchors of a markdown file's headings."""
    anchors = set()
    for line in re.sub(r'^```.*?^```', '', path.read_text(), flags=re.S | re.M).splitlines():
        match = re.match(r'^#{1,6} (.+)$', line)
        if match:
            slug = re.sub(r'[^\w\- ]', '', match.group(1).strip().lower()).replace(' ', '-')
            anchors.add(slug)
    return anchors


def test_relative_links_of_the_readme_and_docs_resolve():
    broken = []
    for page in _markdown_files():
        for target in _links(page):
            file, _, anchor = target.partition('#')
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f'{page.relative_to(REPO)}: {target}')
                continue
            if anchor and dest.suffix == '.md' and anchor not in _anchors(dest):
                broken.append(f'{page.relative_to(REPO)}: {target} (no such heading)')
    assert not broken, broken


def test_every_docs_page_is_in_both_indexes():
    """docs/README.md and the README's Documentation list link every docs page."""
    pages = {p.name for p in DOCS.glob('*.md') if p.name != 'README.md'}
    index = {Path(t).name for t in _links(DOCS / 'README.md')}
    readme_docs = (REPO / 'README.md').read_text().split('## Documentation')[1].split('\n## ')[0]
    listed = set(re.findall(r'\]\(docs/([\w.-]+\.md)\)', readme_docs))
    assert pages <= index, sorted(pages - index)
    assert pages <= listed, sorted(pages - listed)
