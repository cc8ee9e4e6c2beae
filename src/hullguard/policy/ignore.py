"""The ignore file (``.hullguardignore``): reviewed exceptions with a reason and an expiry date.

Format (YAML)::

    ignore:
      - id: CVE-2023-1234          # rule id or any alias; case-insensitive
        package: openssl           # optional: package name, or a purl (version optional)
        path: usr/lib/python3*/**  # optional: glob on the finding's path (no leading slash)
        reason: not reachable, see SEC-42
        expires: 2026-12-31        # optional: suppresses through this day (UTC), then reported

Entries are validated strictly (unknown keys are errors): a typo such as ``expiry:`` would
otherwise turn a temporary exception into a permanent one without anyone noticing.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hullguard.inventory._yaml import YamlError, load_yaml
from hullguard.model import Finding, HullguardError
from hullguard.policy._match import finding_ids, finding_package, purl_key, purl_matches

__all__ = ["DEFAULT_IGNORE_FILE", "IgnoreResult", "IgnoreRule", "apply_ignores", "load_ignore_file"]

DEFAULT_IGNORE_FILE = ".hullguardignore"

# An ignore file is written by hand and holds tens of entries; anything near this is not one.
_MAX_NODES = 200_000
_KEYS = {"id", "package", "path", "reason", "expires"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class IgnoreRule:
    id: str
    reason: str
    package: str = ""
    path: str = ""
    expires: _dt.date | None = None
    # Where the rule came from, so reports can point the user at the line to renew or delete.
    source: str = ""
    index: int = 0  # 1-based position in the ``ignore:`` list
    _purl: tuple[str, str, str, str] | None = field(default=None, repr=False, compare=False)

    def expired(self, today: _dt.date) -> bool:
        # The expiry day itself still suppresses: "expires: 2026-12-31" reads as "valid through".
        return self.expires is not None and self.expires < today

    def matches(self, finding: Finding) -> bool:
        if self.id.upper() not in finding_ids(finding):
            return False
        if self.package and not self._package_matches(finding):
            return False
        return not self.path or self._path_matches(finding)

    def _package_matches(self, finding: Finding) -> bool:
        pkg = finding_package(finding)
        if self._purl is not None:
            return purl_matches(self._purl, str(pkg.get("purl") or ""))
        return bool(pkg) and pkg.get("name") == self.package

    def _path_matches(self, finding: Finding) -> bool:
        path = finding.location.path if finding.location else ""
        if not path:
            return False
        return fnmatchcase(path.lstrip("/"), self.path.lstrip("/"))


@dataclass
class IgnoreResult:
    kept: list[Finding]
    suppressed: list[tuple[Finding, IgnoreRule]]
    # Every expired rule, matched or not: the point is to make someone review it.
    expired: list[IgnoreRule]


def _fail(source: str, where: str, message: str) -> HullguardError:
    # Reported as one line on stderr, so any newline from a parser message is folded.
    text = f"{source}: {where}{message}" if where else f"{source}: {message}"
    return HullguardError(" ".join(text.split()))


def _text(entry: dict[str, Any], key: str, source: str, where: str, required: bool = False) -> str:
    value = entry.get(key)
    if value is None:
        if required:
            raise _fail(source, where, f"missing {key!r}")
        return ""
    if not isinstance(value, str):
        raise _fail(source, where, f"{key!r} must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise _fail(source, where, f"{key!r} must not be empty")
    return value


def _date(value: Any, source: str, where: str) -> _dt.date | None:
    if value is None:
        return None
    # Text mode keeps dates as strings, but accept a real date object in case a caller built one.
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(source, where, f"'expires' must be a date YYYY-MM-DD, got {value!r}")


def _rule(entry: Any, source: str, index: int) -> IgnoreRule:
    where = f"ignore entry {index}: "
    if not isinstance(entry, dict):
        raise _fail(source, where, f"must be a mapping, got {type(entry).__name__}")
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    if unknown:
        raise _fail(source, where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
    rule_id = _text(entry, "id", source, where, required=True)
    if any(c.isspace() for c in rule_id):
        raise _fail(source, where, f"'id' must be a single identifier, got {rule_id!r}")
    package = _text(entry, "package", source, where)
    pattern = None
    if package.startswith("pkg:"):
        pattern = purl_key(package)
        if pattern is None:
            raise _fail(source, where, f"'package' is not a valid package URL: {package!r}")
    return IgnoreRule(
        id=rule_id,
        reason=_text(entry, "reason", source, where, required=True),
        package=package,
        path=_text(entry, "path", source, where),
        expires=_date(entry.get("expires"), source, where),
        source=source,
        index=index,
        _purl=pattern,
    )


def parse_ignore(data: bytes | str, source: str = DEFAULT_IGNORE_FILE) -> list[IgnoreRule]:
    """Parse ignore-file content; ``source`` names it in error messages."""
    try:
        # Text mode: ids and dates stay exactly as written (no YAML 1.1 sexagesimal or date magic).
        doc = load_yaml(data, _MAX_NODES, typed_scalars=False)
    except YamlError as exc:
        raise _fail(source, "", f"not valid YAML: {exc}") from exc
    if doc is None:
        return []  # an empty file ignores nothing, which is what an empty file means
    if not isinstance(doc, dict):
        raise _fail(source, "", f"expected a mapping with an 'ignore' list, got {type(doc).__name__}")
    unknown = sorted(str(k) for k in doc if k != "ignore")
    if unknown:
        raise _fail(source, "", f"unknown top-level key(s) {', '.join(unknown)} (allowed: ignore)")
    entries = doc.get("ignore")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise _fail(source, "", f"'ignore' must be a list, got {type(entries).__name__}")
    return [_rule(entry, source, i) for i, entry in enumerate(entries, 1)]


def load_ignore_file(path: str | Path) -> list[IgnoreRule]:
    """Read and validate an ignore file. Raises HullguardError (one line) on any bad input."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(source, "", f"cannot read ignore file: {exc.strerror or exc}") from exc
    return parse_ignore(data, source)


def apply_ignores(
    findings: list[Finding], rules: list[IgnoreRule], today: _dt.date | None = None
) -> IgnoreResult:
    """Split findings into kept and suppressed; the first matching live rule wins.

    ``today`` defaults to the current UTC date so a CI run gives the same answer in any timezone.
    """
    if today is None:
        today = _dt.datetime.now(_dt.UTC).date()
    live = [r for r in rules if not r.expired(today)]
    expired = [r for r in rules if r.expired(today)]
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, IgnoreRule]] = []
    for finding in findings:
        rule = next((r for r in live if r.matches(finding)), None)
        if rule is None:
            kept.append(finding)
        else:
            suppressed.append((finding, rule))
    return IgnoreResult(kept=kept, suppressed=suppressed, expired=expired)
