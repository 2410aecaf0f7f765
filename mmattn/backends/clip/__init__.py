"""CLIP and Chinese-CLIP as a backend: dense patch features (NACLIP, MaskCLIP), LeGrad, the grounder and its processor, tiny random models for offline tests.
"""
