"""Layer 0 — files: atomic writes (`files`) and the strict checks every checkpoint passes (`checkpoint`).

Imports nothing from mmattn.
"""
