"""Readers for the three rpm database backends and the header blob they all store.

Every backend is just a container of header blobs: sqlite (``rpmdb.sqlite``), Berkeley DB hash
(``Packages``) and rpm's own ndb (``Packages.db``). Each reader here yields the raw blobs and
:mod:`.header` turns a blob into fields, so a new backend only needs a blob iterator.
"""

from __future__ import annotations

from hullguard.inventory.base import AnalyzerError


class RpmdbError(AnalyzerError):
    """A malformed rpm database or header blob."""
