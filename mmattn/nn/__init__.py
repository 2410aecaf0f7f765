"""Layer 1 — the attention maths: scaled dot-product and multi-head attention, sinusoidal positions, blocks, the bidirectional fusion layer.

Imports only `mmattn.io`.
"""
