"""The command-line runner shared by the weight tools."""
import sys
from typing import Any, Callable

from .checkpoint_io import WeightToolError


def run_tool(tool: str, action: Callable[[Any], dict], args: Any, source_text: str) -> int:
    """Run a weight tool's ``action(args)``; print its summary, or its error and return 1.

    Args:
        tool: the tool's name, prefixed to its messages.
        action: the tool's work; returns the ``meta`` it wrote.
        args: the parsed command line (``src``, ``dst``).
        source_text: how the summary names the input (e.g. 'backbone of').
    """
    try:
        meta = action(args)
    except WeightToolError as err:
        print(f'{tool}: error: {err}', file=sys.stderr)
        return 1
    downstream = meta.get('downstream') or (
        f'backbone={meta["backbone_cfg"]} with '
        "init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.', strict=True)")
    print(f'Wrote {args.dst}: {source_text} {args.src} checked against '
          f'{meta["checked_against"]} (mask params {meta["mask_params"]}).\n'
          f'Downstream: {downstream}')
    return 0
