"""Datasets of srflow-plugin; importing this package registers them in BasicSR's DATASET_REGISTRY."""
from .realesrgan_crop_dataset import RealESRGANCropDataset

__all__ = ['RealESRGANCropDataset']
