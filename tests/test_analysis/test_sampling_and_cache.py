"""Seeded sampling without replacement, repeatability, and the per-image cache (resume after an
interruption, reuse when models or images are added)."""
import math
from collections import Counter

import numpy as np
import pytest

from a2mim_plugin.analysis import (InteractionCache, InteractionSettings, analyze_interactions,
                                   neighbour_pairs, sample_contexts, sample_pairs)
from a2mim_plugin.analysis.progress import AnalysisProgress
from a2mim_plugin.analysis.sampling import image_rng

from analysis_helpers import PatchGame, toy_images


def test_pairs_are_unique_neighbours_and_seeded():
    grid = 14
    pairs = sample_pairs(grid, 50, image_rng(0, 'ab' * 20, 0))
    assert pairs.shape == (50, 2) and len({tuple(p) for p in pairs}) == 50
    assert (pairs[:, 0] < pairs[:, 1]).all()
    dy = np.abs(pairs[:, 0] // grid - pairs[:, 1] // grid)
    dx = np.abs(pairs[:, 0] % grid - pairs[:, 1] % grid)
    assert (np.maximum(dy, dx) <= 2).all() and (np.maximum(dy, dx) >= 1).all()
    np.testing.assert_array_equal(pairs, sample_pairs(grid, 50, image_rng(0, 'ab' * 20, 0)))
    assert not np.array_equal(pairs, sample_pairs(grid, 50, image_rng(1, 'ab' * 20, 0)))
    # more pairs than the grid has: every neighbouring pair once
    every = sample_pairs(3, 500, image_rng(0, 'ab' * 20, 0))
    np.testing.assert_array_equal(every, neighbour_pairs(3))
    assert len(neighbour_pairs(3)) == 36 and len(neighbour_pairs(4, 3)) == 42


@pytest.mark.parametrize('n,order,wanted', [(12, 3, 10), (12, 2, 20), (196, 97, 50),
                                            (196, 194, 50), (196, 0, 50)])
def test_contexts_without_replacement(n, order, wanted):
    pair = (2, 5)
    contexts = sample_contexts(n, pair, order, wanted, image_rng(3, 'cd' * 20, 1, order))
    expected = min(wanted, math.comb(n - 2, order))
    assert contexts.shape == (expected, order)
    assert len({tuple(c) for c in contexts}) == expected, 'no context twice'
    assert not np.isin(contexts, pair).any(), 'the pair is never in its context'
    assert (np.diff(contexts, axis=1) > 0).all()
    np.testing.assert_array_equal(
        contexts, sample_contexts(n, pair, order, wanted, image_rng(3, 'cd' * 20, 1, order)))


def test_pairs_never_repeat_for_any_seed():
    """30 of the 42 neighbouring pairs of a 4 x 4 grid (3 x 3 window), where draws with
    replacement, or border clamps taken as pairs, repeat for nearly every seed."""
    for seed in range(200):
        pairs = sample_pairs(4, 30, np.random.default_rng(seed), neighbourhood=3)
        assert pairs.shape == (30, 2) and (pairs[:, 0] < pairs[:, 1]).all(), seed
        assert len({tuple(p) for p in pairs}) == 30, f'a pair twice, seed {seed}'


@pytest.mark.parametrize('n,order,wanted', [
    (10, 3, 13),  # 13 of C(8, 3) = 56 by rejection: a repeat in ~3 of 4 draws with replacement
    (8, 2, 10),  # 10 of C(6, 2) = 15, picked among all of them
    (9, 1, 5),  # 5 of 7 single patches, picked among all of them
    (40, 1, 9)])  # 9 of 38 single patches by rejection
def test_contexts_never_repeat_for_any_seed(n, order, wanted):
    """Small grids, where a draw with replacement repeats a context for most seeds: over 300
    seeds, no (pair, order) ever gets the same context twice."""
    pair = (0, n - 1)
    expected = min(wanted, math.comb(n - 2, order))
    for seed in range(300):
        contexts = sample_contexts(n, pair, order, wanted, np.random.default_rng(seed))
        assert contexts.shape == (expected, order)
        assert len({tuple(c) for c in contexts}) == expected, f'a context twice, seed {seed}'
        assert not np.isin(contexts, pair).any()


@pytest.mark.parametrize('order,wanted', [(3, 10), (2, 20)])  # rejection / enumeration branch
def test_contexts_are_uniform(order, wanted):
    n, pair, draws = 12, (0, 1), 1500
    counts = Counter(tuple(c) for seed in range(draws) for c in
                     sample_contexts(n, pair, order, wanted, np.random.default_rng(seed)))
    total = math.comb(n - 2, order)
    assert len(counts) == total
    mean = draws * wanted / total
    p = wanted / total
    sd = math.sqrt(draws * p * (1 - p))
    assert max(abs(c - mean) for c in counts.values()) < 5 * sd


def test_rerun_repeats_exactly_and_seed_changes_draws():
    images = toy_images(2, 32)
    settings = InteractionSettings(grid_size=4, num_pairs=6, num_contexts=4)
    first = analyze_interactions({'m': PatchGame(4, 'mlp')}, images, settings, device='cpu')
    again = analyze_interactions({'m': PatchGame(4, 'mlp')}, images, settings, device='cpu')
    np.testing.assert_array_equal(first['m'].strength, again['m'].strength)
    other = analyze_interactions({'m': PatchGame(4, 'mlp')}, images,
                                 InteractionSettings(grid_size=4, num_pairs=6, num_contexts=4,
                                                     seed=1), device='cpu')
    assert not np.allclose(first['m'].strength, other['m'].strength)


def interrupting(model: PatchGame, limit: int) -> PatchGame:
    """``model`` raising KeyboardInterrupt (a killed run) once ``limit`` masked images went
    through it; structure and weights unchanged (same cache entries)."""
    forward = model.forward

    def limited(inputs, data_samples=None, mode='tensor'):
        if model.forwards + len(inputs) > limit:
            raise KeyboardInterrupt
        return forward(inputs, data_samples, mode)

    model.forward = limited
    return model


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    images = toy_images(3, 24)
    settings = InteractionSettings(grid_size=3, num_pairs=5, num_contexts=4, batch_size=16)
    per_image = settings.forwards_per_image()
    reference = analyze_interactions({'m': PatchGame(3, 'mlp')}, images, settings, device='cpu')
    cache = InteractionCache(tmp_path / 'cache')
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of the second image
        analyze_interactions({'m': interrupting(PatchGame(3, 'mlp'), per_image * 3 // 2)}, images,
                             settings, cache, device='cpu')
    assert len(list((tmp_path / 'cache').rglob('*.npz'))) == 1
    resumed_model = PatchGame(3, 'mlp')
    resumed = analyze_interactions({'m': resumed_model}, images, settings, cache, device='cpu')
    assert resumed_model.forwards == 2 * per_image, 'only the unfinished images are computed'
    assert resumed['m'].computed_images == 2
    np.testing.assert_array_equal(resumed['m'].strength, reference['m'].strength)
    np.testing.assert_array_equal(resumed['m'].relative, reference['m'].relative)


def test_adding_models_and_images_reuses_the_cache(tmp_path):
    images = toy_images(3, 24, num_classes=2)
    settings = InteractionSettings(grid_size=3, num_pairs=4, num_contexts=3)
    cache = InteractionCache(tmp_path)
    analyze_interactions({'a': PatchGame(3, 'mlp')}, images[:2], settings, cache, device='cpu')
    first, second = PatchGame(3, 'mlp'), PatchGame(3, 'all')
    both = analyze_interactions({'a': first, 'b': second}, images, settings, cache,
                                device='cpu')
    assert first.forwards == settings.forwards_per_image(), 'a: only the added image'
    assert second.forwards == 3 * settings.forwards_per_image(), 'b: every image'
    fresh = analyze_interactions({'a': PatchGame(3, 'mlp')}, images, settings, device='cpu')
    np.testing.assert_array_equal(both['a'].strength, fresh['a'].strength)
    # another batch size is the same entry; other settings or weights are not
    again = PatchGame(3, 'mlp')
    analyze_interactions({'a': again}, images, InteractionSettings(
        grid_size=3, num_pairs=4, num_contexts=3, batch_size=5), cache, device='cpu')
    assert again.forwards == 0
    changed = PatchGame(3, 'mlp')
    changed.w2.data += 1
    analyze_interactions({'a': changed}, images[:1], settings, cache, device='cpu')
    assert changed.forwards == settings.forwards_per_image()
    relabelled = toy_images(1, 24, num_classes=2)[0]
    relabelled.label = 1 - relabelled.label
    assert relabelled.key != images[0].key, 'f depends on the label: another cache entry'


def test_progress_reports_eta():
    now = [0.0]
    progress = AnalysisProgress(1000, interval=5., clock=lambda: now[0])
    lines = []
    import a2mim_plugin.analysis.progress as module
    original = module.print_log
    module.print_log = lambda message, logger=None: lines.append(message)
    try:
        now[0] = 10.
        progress.update(250, 'm: image 1/4, order 3/13')
        now[0] = 11.
        progress.update(10, 'not due')
    finally:
        module.print_log = original
    assert lines == ['m: image 1/4, order 3/13: 250/1000 forwards, 25.0 images/s, elapsed '
                     '0:00:10, ETA 0:00:30']
