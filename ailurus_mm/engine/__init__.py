"""mmengine integration: what configs switch on, under any tool
(``StrictLoadHook``; ``AutocastOptimWrapper`` for bf16 training)."""
from .hooks import StrictLoadHook, ailurus_settings, find_ailurus_backbone
from .optim import AutocastOptimWrapper

__all__ = [
    'StrictLoadHook', 'AutocastOptimWrapper', 'ailurus_settings',
    'find_ailurus_backbone'
]
