"""Layer 3 — the grounding API every backend shares: image loading, processors, `Grounder`, the `Trace` of one forward pass, the `Grounding` result, maps and boxes, overlay pictures, the backend registry.

Imports only the layers below (io, nn, models, scenes).
"""
