"""Layer 2 — the shapes model: text and image encoders, `GroundingModel` with its config and outputs, the word-aware tokenizer.

Imports only `mmattn.io` and `mmattn.nn`.
"""
