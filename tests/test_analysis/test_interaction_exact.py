"""The interaction estimator against quantities known exactly (Deng et al., ICLR 2022; the
measurement of Fig. 1 of Li et al., ICML 2023).

On 2 x 2 and 3 x 3 grids every pair and every context are used, so the estimator's ``I_m(i, j)``
must equal a brute-force enumeration; on toy games whose interactions are known in closed form
the curves must come out exactly."""
import numpy as np
import pytest
import torch

from a2mim_plugin.analysis import (InteractionSettings, analyze_interactions, image_interactions,
                                   interaction_orders, interaction_strength, normalized_input)
from a2mim_plugin.analysis.outputs import ClassifierScorer, class_output

from analysis_helpers import PatchGame, direct_interactions, toy_images


def _run(model, image, settings):
    scorer = ClassifierScorer(model, settings.output)
    return image_interactions(scorer, normalized_input(model, image.image), image.label,
                              image.key, settings)


def test_order_grid_of_the_paper():
    assert interaction_orders(196) == (0, 9, 19, 38, 58, 77, 97, 116, 135, 155, 174, 184, 194)
    assert len(interaction_orders(64)) == 13
    assert interaction_orders(9) == tuple(range(8))  # 3 x 3: ratios collapse onto every order
    assert interaction_orders(4) == (0, 1, 2)
    with pytest.raises(ValueError, match='grid_size'):
        interaction_orders(1)


@pytest.mark.parametrize('grid', [2, 3])
@pytest.mark.parametrize('output,baseline', [('log_odds', 'dataset_mean'),
                                             ('logit', 'image_mean')])
def test_every_context_matches_direct_enumeration(grid, output, baseline):
    model = PatchGame(grid, 'mlp').eval()
    image = toy_images(1, 12 * grid)[0]
    settings = InteractionSettings(grid_size=grid, num_pairs=100, num_contexts=100,
                                   output=output, baseline=baseline, batch_size=7)
    result = _run(model, image, settings)
    forwards = model.forwards
    n = grid * grid
    assert len(result.pairs) == n * (n - 1) // 2  # every pair (the 5 x 5 window covers the grid)
    assert list(result.orders) == list(range(n - 1))
    direct = direct_interactions(model, image, grid, [tuple(p) for p in result.pairs],
                                 result.orders, output, baseline)
    expected = np.stack([direct[tuple(int(v) for v in p)] for p in result.pairs], axis=1)
    assert np.abs(expected).max() > 1e-3, 'the MLP game has real interactions'
    np.testing.assert_allclose(result.values, expected, rtol=1e-4, atol=1e-6)
    # forwards: 4 per (pair, context) and nothing else
    assert forwards == settings.forwards_per_image() == \
        4 * len(result.pairs) * 2 ** (n - 2)
    strength, relative = interaction_strength([result])
    np.testing.assert_allclose(strength, np.abs(expected).mean(axis=1), rtol=1e-4)
    np.testing.assert_allclose(relative.mean(), 1.0)


@pytest.mark.parametrize('grid,contexts', [(3, 100), (4, 6)])
def test_sum_of_per_patch_terms_has_no_interaction(grid, contexts):
    model = PatchGame(grid, 'additive').eval()
    settings = InteractionSettings(grid_size=grid, num_pairs=12, num_contexts=contexts,
                                   output='logit', baseline='image_mean')
    for image in toy_images(2, 8 * grid):
        result = _run(model, image, settings)
        assert np.abs(result.values).max() < 1e-4 * grid * grid
    mlp = _run(PatchGame(grid, 'mlp').eval(), image, settings)
    assert np.abs(mlp.values).max() > 100 * np.abs(result.values).max()


@pytest.mark.parametrize('grid,contexts', [(3, 100), (4, 5)])
def test_product_of_two_indicators_is_flat(grid, contexts):
    pair = (0, grid + 1)  # diagonal neighbours
    model = PatchGame(grid, 'product', pair=pair).eval()
    settings = InteractionSettings(grid_size=grid, num_pairs=1000, num_contexts=contexts,
                                   output='logit')
    image = toy_images(1, 8 * grid)[0]
    result = _run(model, image, settings)
    rows = [k for k, p in enumerate(result.pairs) if tuple(p) == pair]
    assert len(rows) == 1
    np.testing.assert_array_equal(result.values[:, rows[0]], 1.0)
    others = np.delete(result.values, rows[0], axis=1)
    np.testing.assert_array_equal(others, 0.0)
    strength, relative = interaction_strength([result])
    np.testing.assert_allclose(strength, 1.0 / len(result.pairs))
    np.testing.assert_allclose(relative, 1.0)


@pytest.mark.parametrize('grid,contexts', [(3, 100), (4, 5)])
def test_all_patches_game_interacts_only_at_the_highest_order(grid, contexts):
    model = PatchGame(grid, 'all').eval()
    settings = InteractionSettings(grid_size=grid, num_pairs=20, num_contexts=contexts,
                                   output='logit')
    result = _run(model, toy_images(1, 8 * grid)[0], settings)
    assert result.orders[-1] == grid * grid - 2
    np.testing.assert_array_equal(result.values[:-1], 0.0)
    np.testing.assert_array_equal(result.values[-1], 1.0)
    _, relative = interaction_strength([result])
    np.testing.assert_allclose(relative, [0.0] * (len(relative) - 1) + [len(relative)])


def test_batch_size_does_not_change_the_numbers():
    model = PatchGame(4, 'mlp').eval()
    image = toy_images(1, 32)[0]
    results = [_run(model, image, InteractionSettings(grid_size=4, num_pairs=5, num_contexts=4,
                                                      batch_size=b)) for b in (1, 13, 4096)]
    for other in results[1:]:
        np.testing.assert_array_equal(other.pairs, results[0].pairs)
        np.testing.assert_allclose(other.values, results[0].values, rtol=1e-5, atol=2e-6)


def test_class_outputs():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits.double(), dim=1)[:, 1]
    np.testing.assert_allclose(class_output(logits, 1, 'log_odds'), torch.log(p / (1 - p)),
                               rtol=1e-6)
    np.testing.assert_allclose(class_output(logits, 1, 'log_prob'), torch.log(p), rtol=1e-6)
    np.testing.assert_array_equal(class_output(logits, 1, 'logit'), logits[:, 1])
    with pytest.raises(ValueError, match='outside the 3 classes'):
        class_output(logits, 3)
    with pytest.raises(ValueError, match='output must be one of'):
        InteractionSettings(output='prob')
    with pytest.raises(ValueError, match='baseline must be one of'):
        InteractionSettings(baseline='zero')


def test_several_models_get_their_own_curves_on_the_same_draws():
    images = toy_images(2, 24)
    settings = InteractionSettings(grid_size=3, num_pairs=4, num_contexts=3, output='logit')
    models = {'mlp': PatchGame(3, 'mlp'), 'all': PatchGame(3, 'all')}
    together = analyze_interactions(models, images, settings, device='cpu')
    alone = analyze_interactions({'mlp': PatchGame(3, 'mlp')}, images, settings, device='cpu')
    assert list(together) == ['mlp', 'all']
    np.testing.assert_array_equal(together['mlp'].strength, alone['mlp'].strength)
    np.testing.assert_array_equal(together['all'].relative[:-1], 0.0)
    assert together['mlp'].num_images == 2 and together['mlp'].computed_images == 2
    assert together['mlp'].seconds > 0
