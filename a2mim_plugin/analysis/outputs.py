"""The scalar model output ``f`` whose interactions are measured (Deng et al., ICLR 2022)."""
from contextlib import nullcontext

import torch

# 'log_odds': log(p_y / (1 - p_y)) = z_y - logsumexp_{c != y} z_c (the papers' choice);
# 'log_prob': log p_y; 'logit': z_y.
OUTPUTS = ('log_odds', 'log_prob', 'logit')


def class_output(logits: torch.Tensor, label: int, output: str = 'log_odds') -> torch.Tensor:
    """``f`` of the ground-truth class for a batch of logits, in float32.

    Args:
        logits: (B, K) class scores.
        label: the ground-truth class y, 0 <= y < K.
        output: one of :data:`OUTPUTS`.

    Returns:
        (B,) float32 tensor.
    """
    logits = logits.float()
    if not 0 <= label < logits.shape[1]:
        raise ValueError(f'Label {label} is outside the {logits.shape[1]} classes of the '
                         'classifier; the images must carry labels of its classes.')
    if output == 'logit':
        return logits[:, label]
    if output == 'log_prob':
        return torch.log_softmax(logits, dim=1)[:, label]
    if output == 'log_odds':
        if logits.shape[1] < 2:
            raise ValueError('output="log_odds" needs at least 2 classes; use "logit".')
        others = torch.cat([logits[:, :label], logits[:, label + 1:]], dim=1)
        return logits[:, label] - torch.logsumexp(others, dim=1)
    raise ValueError(f'Unknown output {output!r}; choose one of {OUTPUTS}.')


class ClassifierScorer:
    """``f`` of an MMPretrain-style classifier on batches of masked, normalised images.

    The model is called as ``model(inputs, mode='tensor')`` (an ``ImageClassifier`` returns
    its head's logits there); only ``f`` is kept, never the logits of the batch.

    Args:
        model: a classifier in eval mode on its device.
        output: one of :data:`OUTPUTS`.
        amp: run the forward under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU);
            ``f`` itself is always computed in float32. Off by default: the pair effects are
            small differences of log-odds.
    """

    def __init__(self, model: torch.nn.Module, output: str = 'log_odds',
                 amp: bool = False) -> None:
        if output not in OUTPUTS:
            raise ValueError(f'Unknown output {output!r}; choose one of {OUTPUTS}.')
        self.model = model
        self.output = output
        self.amp = amp

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor, label: int) -> torch.Tensor:
        """(B,) float32 ``f`` of ``label`` for (B, 3, H, W) normalised inputs."""
        device_type = inputs.device.type
        autocast = torch.autocast(device_type=device_type,
                                  dtype=torch.float16 if device_type == 'cuda' else torch.bfloat16
                                  ) if self.amp else nullcontext()
        with autocast:
            logits = self.model(inputs, mode='tensor')
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        return class_output(logits, label, self.output)
