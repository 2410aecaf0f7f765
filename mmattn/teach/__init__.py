"""Layer 5 — the teaching views: the step-by-step numbers recomputed from a trace (`numbers`), interactive figures (`figures`), the demo's pictures and tables (`views`), and the page's text in each language.
"""
