from .fourier import FocalFrequencyLoss, fft2_fp32
from .spatial import ElementwiseL1Loss, FocalL1Loss

__all__ = ['ElementwiseL1Loss', 'FocalFrequencyLoss', 'FocalL1Loss', 'fft2_fp32']
