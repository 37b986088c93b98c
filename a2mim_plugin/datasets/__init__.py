from .demo_data import DEMO_PHOTOS, load_demo_photos, make_demo_classification, make_demo_imagenet
from .rect_mask_generator import SimMIMRectMaskGenerator

__all__ = ['DEMO_PHOTOS', 'load_demo_photos', 'make_demo_classification', 'make_demo_imagenet',
           'SimMIMRectMaskGenerator']
