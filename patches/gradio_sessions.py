"""gradio 6.31 builds the config of every block of the page for each new session.

``gradio.state_holder.SessionState.__init__`` calls ``BlocksConfig.config_for_block`` for each
of the page's ~125 blocks (``inspect.signature`` of every constructor included), to be able to
rebuild the page for a deep link. Every ``/call`` to the API opens a new session, so each new
question paid for it: 12 ms of a ``/ground`` request of about 100 ms on a 2-core AVX2 EPYC
(py-spy of the server under ``bench/service_ratio.py``: 9.6% of its busy samples).

:func:`install` makes that table lazy: a block's config is built the first time the session
reads it (a deep link reads them all, then as before); setting a block or a value builds its
own entry as gradio does.

Upstream check: ``tests/demo/test_patches.py`` fails once ``SessionState.__init__`` no longer
builds ``config_for_block`` for every block, or its attributes change.
"""

from __future__ import annotations

from gradio import state_holder

ORIGINAL_INIT = state_holder.SessionState.__init__  #: gradio's own (the upstream check reads it)


class LazyConfigs(dict):
    """``block id -> config`` that builds an entry when it is first read."""

    def __init__(self, build, keys):
        super().__init__()
        self._build, self._pending = build, set(keys)

    def __missing__(self, key):
        if key not in self._pending:
            raise KeyError(key)
        self._pending.discard(key)
        value = self._build(key)
        dict.__setitem__(self, key, value)
        return value

    def __setitem__(self, key, value):
        self._pending.discard(key)
        super().__setitem__(key, value)

    def __contains__(self, key):
        return dict.__contains__(self, key) or key in self._pending

    def _all(self):
        for key in list(self._pending):
            self[key]  # noqa: B018 -- builds it
        return self

    def __iter__(self):
        return dict.__iter__(self._all())

    def __len__(self):
        return dict.__len__(self) + len(self._pending)

    def keys(self):
        return dict.keys(self._all())

    def values(self):
        return dict.values(self._all())

    def items(self):
        return dict.items(self._all())

    def get(self, key, default=None):
        return self[key] if key in self else default


def _lazy_init(self, blocks) -> None:
    ORIGINAL_INIT(self, _NoBlocks(blocks))  # every attribute as gradio sets it, the config table empty
    config = self.blocks_config
    keys = [k for k in config.blocks if k in blocks.blocks]
    self.config_values = LazyConfigs(lambda k: config.config_for_block(k, [], config.blocks[k]), keys)


class _NoBlocks:
    """``blocks`` as gradio's ``__init__`` reads it, with no block to build a config for."""

    def __init__(self, blocks):
        self.default_config, self.blocks = blocks.default_config, {}


def install() -> None:
    if state_holder.SessionState.__init__ is ORIGINAL_INIT:
        state_holder.SessionState.__init__ = _lazy_init
