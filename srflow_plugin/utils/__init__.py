from .registry import register

__all__ = ['register']
