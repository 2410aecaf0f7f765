"""gradio 6.31 rewrites the ``.pyi`` type stubs of its ~80 component classes at every import.

``gradio.component_meta.create_or_modify_pyi`` parses each class's source file, renders a
template and compares it with the ``.pyi`` that its wheel already ships: about 1.0 s of
``import gradio``'s 2.5 s on 2 cores, for files that only type checkers read.
:func:`install` (before ``import gradio``) adds a one-module import hook that loads
``gradio.component_meta`` as usual, then makes that one function a no-op. It does nothing if
gradio is imported already, or if the function is renamed.

Upstream check: ``tests/test_patches.py`` fails once gradio no longer calls the function at
import time.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

TARGET = "gradio.component_meta"


class SkipGradioStubs(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # once
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_skip_stubs(module):
                exec_module(module)
                if callable(getattr(module, "create_or_modify_pyi", None)):
                    module.create_or_modify_pyi = lambda *args, **kwargs: None

            spec.loader.exec_module = exec_then_skip_stubs
        return spec


def install() -> None:
    """Call before ``import gradio``; a no-op afterwards."""
    if "gradio" not in sys.modules and not any(isinstance(f, SkipGradioStubs) for f in sys.meta_path):
        sys.meta_path.insert(0, SkipGradioStubs())
