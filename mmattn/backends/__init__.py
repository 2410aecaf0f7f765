"""Layer 4 — the backends that plug into `mmattn.api`: `shapes` (the shipped model: what it knows, whether a picture is from its world) and `clip` (CLIP and Chinese-CLIP for photographs); `catalog` lists the models a page can offer.
"""
