"""Grounding many pairs: result rows for files and datasets (:mod:`mmattn.scale.rows`), Ray Data
(:mod:`mmattn.scale.distributed`, the ``[ray]`` extra) and ``mmattn ground-many``.

A layer above ``backends``: it imports only from the layers below it (api, backends)."""
