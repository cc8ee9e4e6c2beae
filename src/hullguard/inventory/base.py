"""The analyzer contract.

The artifact walks every layer once and offers each file to every analyzer through ``wants``
(cheap, no I/O: path, mode and size only). Files that some analyzer wants are read once and handed
to ``analyze`` as bytes. Analyzers never open the image themselves and never see other files:
anything that needs two files (dpkg status + info/*.list) emits separate facts that the merge step
joins.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from hullguard.model import Fact


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str  # relative to the image root, no leading slash, normalised ("usr/lib/os-release")
    mode: int = 0o644  # permission bits plus S_ISUID/S_ISGID/S_ISVTX
    size: int = 0

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)

    @property
    def setuid(self) -> bool:
        return bool(self.mode & (stat.S_ISUID | stat.S_ISGID))


class AnalyzerError(Exception):
    """An analyzer could not parse a file: reported as a warning, the scan goes on."""


def load_json(info: FileInfo, data: bytes) -> Any:
    """Decode a JSON file from an image, turning every way it can be broken into AnalyzerError."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise AnalyzerError(f"{info.path}: not UTF-8: {exc}") from None
    except ValueError as exc:
        raise AnalyzerError(f"{info.path}: invalid JSON: {exc}") from None
    except RecursionError:
        raise AnalyzerError(f"{info.path}: JSON nested too deeply") from None


class Analyzer:
    """Base class. Subclasses set ``name`` and ``version`` and implement wants/analyze.

    ``version`` is part of the layer-cache key: bump it whenever the output for the same input
    changes, so that stale cached results are not reused.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    # Largest file this analyzer reads; bigger files are skipped with a warning.
    max_size: ClassVar[int] = 64 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        raise NotImplementedError

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        raise NotImplementedError
