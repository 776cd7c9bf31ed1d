"""mmengine integration: hooks that configs switch on, under any tool."""
from .hooks import StrictLoadHook, ailurus_settings, find_ailurus_backbone

__all__ = ['StrictLoadHook', 'ailurus_settings', 'find_ailurus_backbone']
