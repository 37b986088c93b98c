"""tools/interaction_strength.py end to end on a tiny MMPretrain classifier (config and
checkpoint written here), and its refusals: a checkpoint without a trained classifier head and
images whose labels the head does not have."""
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image

from a2mim_plugin.analysis import (InteractionSettings, analyze_interactions, check_labels,
                                   load_classifier, load_labelled_images)

REPO = Path(__file__).resolve().parents[2]
CLASSES = ['apple', 'brick', 'cloud']
CONFIG = '''
custom_imports = dict(imports=['a2mim_plugin'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes={num_classes}, in_channels=64,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes={num_classes}, mean=[123.675, 116.28, 103.53],
                         std=[58.395, 57.12, 57.375], to_rgb=True)
'''


def _tool():
    spec = importlib.util.spec_from_file_location('interaction_strength',
                                                  REPO / 'tools' / 'interaction_strength.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _classifier(tmp_path: Path, name: str, num_classes: int = 3, seed: int = 0):
    """A config and a fine-tuned-style checkpoint (every key, dataset classes in meta)."""
    config = tmp_path / f'{name}.py'
    config.write_text(CONFIG.format(num_classes=num_classes))
    cfg = Config.fromfile(str(config))
    torch.manual_seed(seed)
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    with torch.no_grad():
        model.head.fc.weight.mul_(20.)  # confident, distinct outputs
    checkpoint = tmp_path / f'{name}.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=CLASSES[:num_classes]))), checkpoint)
    return config, checkpoint, model


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('cls_images')
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / 'val' / name).mkdir(parents=True)
        for j in range(2):
            pixels = rng.integers(0, 256, (64, 72, 3), dtype=np.uint8) // (k + 1)
            Image.fromarray(pixels).save(root / 'val' / name / f'{j}.png')
    return root


def test_loading_checks_and_class_order(tmp_path, image_folder):
    config, checkpoint, model = _classifier(tmp_path, 'ok')
    loaded, classes = load_classifier(config, checkpoint)
    assert classes == CLASSES and not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    torch.testing.assert_close(loaded.data_preprocessor.mean.flatten(),
                               torch.tensor([123.675, 116.28, 103.53]))
    images, data_classes = load_labelled_images(image_folder, 'val', resize=32, crop_size=32,
                                                num_images=4)
    assert data_classes == CLASSES
    assert [image.label for image in images] == [0, 1, 2, 0], 'round-robin over the classes'
    assert all(tuple(image.image.shape) == (3, 32, 32) for image in images)
    check_labels(images, 3, classes, data_classes)


def test_refuses_a_checkpoint_without_classifier_head(tmp_path):
    config, _, model = _classifier(tmp_path, 'pre')
    pretraining = tmp_path / 'epoch_300.pth'  # what an A2MIM pre-training run leaves
    state = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    state['neck.decoder.0.weight'] = torch.zeros(48, 64, 1, 1)
    torch.save(dict(state_dict=state, meta=dict()), pretraining)
    with pytest.raises(RuntimeError, match='needs a fine-tuned classifier') as error:
        load_classifier(config, pretraining)
    assert 'head.fc.weight' in str(error.value) and 'backbone. (' in str(error.value)
    other_config, other_checkpoint, _ = _classifier(tmp_path, 'four', num_classes=2)
    with pytest.raises(RuntimeError, match='model.head.num_classes'):
        load_classifier(config, other_checkpoint)  # a head for 2 classes in a 3-class model
    partial = {k: v for k, v in model.state_dict().items() if 'layer4' not in k}
    torch.save(dict(state_dict=partial), tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match=r'keys missing .*layer4'):
        load_classifier(config, tmp_path / 'partial.pth')


def test_refuses_labels_outside_the_classes(tmp_path, image_folder):
    images, data_classes = load_labelled_images(image_folder, 'val', resize=32, crop_size=32)
    with pytest.raises(ValueError, match=r'2 images carry labels outside the 2 classes.*'
                                         r'--data-root'):
        check_labels(images, 2, model_name='two-class')
    with pytest.raises(ValueError, match='not the classes m was fine-tuned on'):
        check_labels(images, 3, ['x', 'y', 'z'], data_classes, model_name='m')
    config, checkpoint, _ = _classifier(tmp_path, 'two', num_classes=2)
    out = tmp_path / 'out'
    code = _tool().main(['--model', 'two', str(config), str(checkpoint), '--data-root',
                         str(image_folder), '--data-prefix', 'val', '--resize', '32',
                         '--crop-size', '32', '--grid', '2', '--out-dir', str(out)])
    assert code == 2 and not out.exists()


def test_tool_end_to_end(tmp_path, image_folder, capsys):
    models = {name: _classifier(tmp_path, name, seed=seed)
              for name, seed in (('first', 0), ('second', 1))}
    out = tmp_path / 'out'
    argv = ['--data-root', str(image_folder), '--data-prefix', 'val', '--num-images', '3',
            '--resize', '64', '--crop-size', '64', '--grid', '4', '--pairs', '3',
            '--contexts', '2', '--batch-size', '64', '--device', 'cpu', '--out-dir', str(out),
            '--title', 'tiny']
    for name, (config, checkpoint, _) in models.items():
        argv += ['--model', name, str(config), str(checkpoint)]
    tool = _tool()
    assert tool.main(argv) == 0
    record = json.loads((out / 'interaction.json').read_text())
    settings = InteractionSettings(grid_size=4, num_pairs=3, num_contexts=2)
    assert record['settings'] == settings.as_dict()
    assert settings.orders == (0, 1, 2, 4, 5, 7, 8, 9, 11, 12, 13, 14)  # n = 16: 12 orders
    assert record['forwards_per_image_and_model'] == 4 * 3 * (10 * 2 + 1 + 1) == \
        settings.forwards_per_image()
    assert list(record['models']) == ['first', 'second']
    images, _ = load_labelled_images(image_folder, 'val', resize=64, crop_size=64, num_images=3)
    direct = analyze_interactions({n: m for n, (_, _, m) in models.items()}, images, settings,
                                  device='cpu')
    for name, entry in record['models'].items():
        assert entry['orders'] == list(settings.orders) and entry['images'] == 3
        assert entry['source']['checkpoint'] == str(models[name][1])
        assert entry['run']['computed_images'] == 3 and entry['run']['masked_images_per_second'] > 0
        np.testing.assert_allclose(entry['I'], direct[name].strength, rtol=1e-5)
        np.testing.assert_allclose(entry['J'], direct[name].relative, rtol=1e-5)
        assert np.mean(entry['J']) == pytest.approx(1.0) and min(entry['I']) > 0
    assert not np.allclose(record['models']['first']['J'], record['models']['second']['J'])
    rows = list(csv.DictReader((out / 'interaction.csv').open()))
    assert len(rows) == 2 * 12 and rows[0]['model'] == 'first' and rows[-1]['order'] == '14'
    assert float(rows[5]['J']) == pytest.approx(record['models']['first']['J'][5], rel=1e-5)
    picture = Image.open(out / 'interaction.png')
    assert picture.format == 'PNG' and picture.size[0] > 500
    # a second run reads every (model, image) from the cache and writes the same numbers
    assert tool.main(argv) == 0
    again = json.loads((out / 'interaction.json').read_text())
    assert all(m['run']['computed_images'] == 0 for m in again['models'].values())
    assert [m['J'] for m in again['models'].values()] == \
        [m['J'] for m in record['models'].values()]
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--help'])
    assert exit_info.value.code == 0
    assert 'forwards' in capsys.readouterr().out


def test_plot_in_the_papers_form(tmp_path):
    from a2mim_plugin.analysis import plot_interaction_curves
    from a2mim_plugin.analysis.analyze import InteractionResult
    orders = np.asarray(InteractionSettings().orders)
    curve = InteractionResult('x', orders, 196, np.ones(13), np.linspace(0.5, 1.5, 13), 5)
    figure = plot_interaction_curves([curve, InteractionResult('y', orders, 196, np.ones(13),
                                                               np.ones(13), 5)],
                                     tmp_path / 'p.png')
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == \
        ['0.0n', '0.2n', '0.4n', '0.6n', '0.8n', '1.0n']
    assert ax.get_ylim()[0] == 0.
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ['x (5 images)', 'y (5 images)']
    np.testing.assert_allclose(ax.lines[0].get_xdata(), orders / 196)
    assert (tmp_path / 'p.png').stat().st_size > 1000
