"""The interaction-strength figure in the form of Li et al., ICML 2023, Fig. 1."""
import os
from typing import Sequence, Union

import numpy as np

from .analyze import InteractionResult

TICKS = np.linspace(0., 1., 6)


def plot_interaction_curves(results: Sequence[InteractionResult], path: Union[str, os.PathLike],
                            title: str = ''):
    """Draw ``J_m`` against ``m / n`` (ticks 0.0n ... 1.0n), one curve per model, and save a PNG.

    Args:
        results: the models' results.
        path: the PNG to write.
        title: optional title.

    Returns:
        The matplotlib figure (not registered with pyplot; still inspectable).
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    figure = Figure(figsize=(5.0, 3.6), dpi=150)
    ax = figure.subplots()
    markers = 'osD^v<>p*h'
    for k, result in enumerate(results):
        ax.plot(result.ratios, result.relative, marker=markers[k % len(markers)], markersize=4,
                linewidth=1.5, label=f'{result.name} ({result.num_images} images)')
    ax.set_xticks(TICKS)
    ax.set_xticklabels([f'{t:.1f}n' for t in TICKS])
    ax.set_xlim(-0.03, 1.03)
    top = max((np.nanmax(r.relative) for r in results if np.isfinite(r.relative).any()),
              default=1.)
    ax.set_ylim(0., 1.08 * top)
    ax.set_xlabel('order m')
    ax.set_ylabel('relative interaction strength $J^{(m)}$')
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(str(path))
    return figure
