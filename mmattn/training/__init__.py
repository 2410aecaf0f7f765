"""Layer 5 — training and evaluation on the shapes world: supervision targets, the training loop and its resumable state, `mmattn eval`, the CLIP fusion trainer.
"""
