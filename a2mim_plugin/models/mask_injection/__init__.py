"""One mechanism that puts A2MIM's mask token at a named module of any backbone."""
from .injection import (MaskTokenInjection, default_input_size, find_injection_module,
                        find_mask_injection, loads_pretrained)
from .layout import FeatureLayout
from .token import MASK_PARAM_NAMES, TOKEN_INITS, TOKEN_MODES, apply_mask_token

__all__ = [
    'FeatureLayout', 'MASK_PARAM_NAMES', 'MaskTokenInjection', 'TOKEN_INITS', 'TOKEN_MODES',
    'apply_mask_token', 'default_input_size', 'find_injection_module', 'find_mask_injection',
    'loads_pretrained'
]
