"""The README's published-row table: numbers copied exactly from the seeds, links that exist."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / 'shared' / 'seeds' / 'a2mim_results_readme.md'
BACKBONES = {'ViT-S': 'ViT-Small', 'ViT-B': 'ViT-Base', 'ViT-L': 'ViT-Large'}


def _rows(text: str):
    for line in text.splitlines():
        if line.startswith('|') and not re.match(r'^\|[\s:|-]+\|$', line):
            yield [cell.strip() for cell in line.strip().strip('|').split('|')]


def _published() -> set:
    """(method, backbone, top-1 text) of every ImageNet-1K row of the seeds."""
    published = set()
    for cells in _rows(SEEDS.read_text()):
        if cells[0] in ('SimMIM', 'A2MIM'):  # Method | Backbone | Epoch | Top-1 | ...
            published.add((cells[0], cells[1], cells[3]))
        elif re.fullmatch(r'\d+', cells[1]):  # Backbone | Epoch | Top-1 | ... (A2MIM tables)
            published.add(('A2MIM', cells[0], cells[2]))
    return published


def _readme_rows():
    section = (REPO / 'README.md').read_text().split('## Published rows')[1].split('\n## ')[0]
    return [cells for cells in _rows(section) if cells[0] != 'Backbone']


@pytest.mark.skipif(not SEEDS.exists(), reason='the seeds live in ../shared beside the checkout')
def test_published_numbers_are_copied_from_the_seeds():
    published = _published()
    rows = _readme_rows()
    assert len(rows) == 20
    numbers = 0
    for backbone, method, top1, *_ in rows:
        if not re.fullmatch(r'\d+\.\d', top1):
            continue
        numbers += 1
        key = ('SimMIM' if method.startswith('SimMIM') else 'A2MIM',
               BACKBONES.get(backbone, backbone), top1)
        assert key in published, f'{key} is not a row of {SEEDS.name}'
    assert numbers == 19


def test_linked_configs_exist():
    for cells in _readme_rows():
        for cell in cells[3:]:
            path = re.search(r'\]\(([^)]+)\)', cell).group(1)
            assert (REPO / path).is_file(), path
