"""Layer 6 — the demo's logic, importable without starting a server: the trace cache, the model pool, input checks, exports. `app.py` is its layout and wiring.
"""
