"""The README's published-row table: the numbers of the published table, links that exist.

The published table is kept in the repository (``tests/data/published_results.yaml``, copied
from OpenMixup's A2MIM results README), so the check runs in any checkout. Where the copy of
that README given to the project sits beside the checkout (``../shared/seeds``), the data file
is also checked against it.
"""
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
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


def _epochs(cell: str) -> int:
    """Epochs of the config linked in a README cell (``...-300e_in1k.py``)."""
    return int(re.search(r'-(\d+)e_in1k\.py\]', cell).group(1))


def _readme_rows() -> List[List[str]]:
    section = (REPO / 'README.md').read_text().split('## Published rows')[1].split('\n## ')[0]
    return [cells for cells in _rows(section) if cells[0] != 'Backbone']


def _readme_key(cells: List[str]) -> Tuple[Key, Optional[str]]:
    """The published-row key of a README row and the protocol its method cell names."""
    backbone, method, _, pre, fine = cells
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
        top1 = cells[2]
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
        for cell in cells[3:]:
            path = re.search(r'\]\(([^)]+)\)', cell).group(1)
            assert (REPO / path).is_file(), path
