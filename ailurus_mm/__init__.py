"""ailurus_mm: AiluRus token clustering for plain-ViT dense prediction."""
__version__ = '0.1.0'
