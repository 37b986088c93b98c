"""CSV and JSON records of interaction results with the settings that produced them."""
import csv
import io
import json
import math
import os
from typing import Mapping, Sequence, Union

from ..utils.atomic_io import atomic_write_bytes
from .analyze import InteractionResult
from .estimator import InteractionSettings

CSV_FIELDS = ('model', 'order', 'order_over_n', 'I', 'J', 'images', 'grid_size', 'pairs',
              'contexts', 'output', 'baseline', 'seed')


def _number(value: float):
    return None if math.isnan(value) else float(value)


def _throughput(result: InteractionResult, settings: InteractionSettings) -> dict:
    forwards = result.computed_images * settings.forwards_per_image()
    return dict(computed_images=result.computed_images, seconds=round(result.seconds, 3),
                masked_images_per_second=(round(forwards / result.seconds, 2)
                                          if result.seconds > 0 else None))


def results_to_dict(results: Sequence[InteractionResult], settings: InteractionSettings,
                    models: Mapping[str, dict]) -> dict:
    """A JSON-ready record: settings, the cost per image, each model's curve and the measured
    throughput of this call (images served from the cache excluded).

    Args:
        results: the models' results.
        settings: the protocol used.
        models: name -> description of where the model came from (config, checkpoint, ...).
    """
    return dict(
        settings=settings.as_dict(),
        forwards_per_image_and_model=settings.forwards_per_image(),
        models={r.name: dict(source=dict(models.get(r.name, {})), images=r.num_images,
                             orders=[int(m) for m in r.orders],
                             order_over_n=[float(x) for x in r.ratios],
                             I=[_number(x) for x in r.strength],
                             J=[_number(x) for x in r.relative],
                             run=_throughput(r, settings)) for r in results})


def write_results(results: Sequence[InteractionResult], settings: InteractionSettings,
                  models: Mapping[str, dict], json_path: Union[str, os.PathLike],
                  csv_path: Union[str, os.PathLike]) -> dict:
    """Write the JSON record and a CSV with one row per (model, order); returns the record."""
    record = results_to_dict(results, settings, models)
    atomic_write_bytes(json.dumps(record, indent=2).encode(), str(json_path))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for result in results:
        for m, ratio, strength, relative in zip(result.orders, result.ratios, result.strength,
                                                result.relative):
            writer.writerow(dict(model=result.name, order=int(m), order_over_n=f'{ratio:.4f}',
                                 I=f'{strength:.8g}', J=f'{relative:.6g}',
                                 images=result.num_images, grid_size=settings.grid_size,
                                 pairs=settings.pairs_per_image, contexts=settings.num_contexts,
                                 output=settings.output, baseline=settings.baseline,
                                 seed=settings.seed))
    atomic_write_bytes(buffer.getvalue().encode(), str(csv_path))
    return record
