"""The multi-pattern secret engine.

Two backends, one answer:

* **hyperscan** (when importable): every rule and every keyword go into one compiled database
  and the file is scanned once. Rules are compiled in *prefilter* mode, which promises no false
  negatives, so the pass only tells us which rules *may* match; Python ``re`` then extracts the
  exact spans for those rules alone. On ordinary text almost no rule survives the pass, which is
  where the speed comes from.
* **re** (fallback): the keyword gate runs as substring searches over the lower-cased file and
  every rule that passes it is run with ``re``.

Both backends end in the same ``re`` confirmation step with the same filters (entropy,
placeholders, path globs, allow-list), so their findings are identical by construction; the
hyperscan pass can only skip rules that ``re`` would not have matched anyway. A test runs both on
the same corpus to keep it that way.

What is skipped by default, and why (see ``DEFAULT_SKIP``):
* binaries (a NUL byte or mostly control bytes in the first 8 KiB): regexes over machine code
  produce noise, and credential files are text;
* files over ``max_size`` (10 MiB): configuration and source files are far smaller, and the cap
  bounds the work a hostile layer can cause;
* third-party trees — ``node_modules``, Python ``site-packages``/``dist-packages`` and the
  standard library, Go's toolchain sources, Ruby gems, ``vendor/`` — and lockfiles: these ship
  test fixtures full of deliberately fake keys (Go's ``crypto/tls`` tests alone hold dozens of
  PEM keys) and are not where a team's own credentials live. Documentation, locales, man pages
  and public CA bundles are skipped for the same reason. ``skip_default_paths=False`` scans
  everything.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hullguard.detect.secrets.rules import RULES, Rule
from hullguard.model import Finding

try:  # Optional native dependency; the pure-Python path gives the same findings.
    import hyperscan as _hs
except ImportError:  # pragma: no cover - depends on the platform
    _hs = None

MAX_SIZE = 10 * 1024 * 1024
MAX_MATCHES_PER_FILE = 500
# Past this many prefilter hits for one rule, confirming line by line stops paying off.
MAX_PREFILTER_ENDS = 20_000
BINARY_SNIFF = 8192
EVIDENCE_WIDTH = 160

# Components of a path that mark a third-party tree.
_SKIP_DIRS = frozenset(
    {"node_modules", ".git", "__pycache__", "site-packages", "dist-packages", "vendor",
     "bower_components", ".tox", ".venv"}
)
# Prefixes of image paths that hold distribution content rather than application content.
_SKIP_PREFIXES = (
    "usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
    "usr/share/zoneinfo/", "usr/share/i18n/", "usr/share/mime/", "usr/share/icons/",
    "usr/share/ca-certificates/", "etc/ssl/certs/", "etc/pki/ca-trust/", "usr/local/go/",
    "usr/lib/go/", "usr/share/go/", "usr/lib/ruby/", "var/lib/gems/", "usr/local/lib/ruby/",
    "usr/share/perl", "usr/lib/jvm/", "proc/", "sys/", "dev/",
)
_PY_STDLIB = re.compile(r"^(?:usr/|usr/local/|opt/[^/]+/)?lib/python[23](?:\.\d+)?/")
_GO_TOOLCHAIN = re.compile(r"^usr/lib/go-[0-9.]+/")
_LOCKFILES = frozenset(
    {"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock",
     "pipfile.lock", "uv.lock", "pdm.lock", "cargo.lock", "go.sum", "composer.lock",
     "gemfile.lock", "packages.lock.json", "mix.lock", "pubspec.lock", "podfile.lock"}
)
# Extensions of media, archives and compiled code: never credential files, often huge.
_SKIP_EXT = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".ico", ".webp", ".bmp", ".svg", ".ttf", ".otf", ".woff",
     ".woff2", ".eot", ".mp3", ".mp4", ".ogg", ".wav", ".avi", ".mov", ".zip", ".gz", ".tgz",
     ".bz2", ".xz", ".zst", ".7z", ".rar", ".jar", ".war", ".ear", ".whl", ".egg", ".so",
     ".a", ".o", ".dll", ".dylib", ".exe", ".class", ".pyc", ".pyo", ".wasm", ".pdf", ".mo",
     ".db", ".sqlite", ".rpm", ".deb", ".apk", ".iso", ".min.js", ".map"}
)

DEFAULT_SKIP = (
    "dirs: " + ", ".join(sorted(_SKIP_DIRS)),
    "prefixes: " + ", ".join(_SKIP_PREFIXES),
    "python stdlib, go toolchain, lockfiles, media/archive/compiled extensions",
)


def should_skip_path(path: str) -> bool:
    """True when ``path`` (relative, no leading slash) is in a tree skipped by default."""
    p = path.lstrip("/")
    low = p.lower()
    if low.startswith(_SKIP_PREFIXES) or _PY_STDLIB.match(low) or _GO_TOOLCHAIN.match(low):
        return True
    parts = low.split("/")
    if _SKIP_DIRS.intersection(parts[:-1]):
        return True
    name = parts[-1]
    if name in _LOCKFILES:
        return True
    dot = name.find(".")
    while dot != -1:
        if name[dot:] in _SKIP_EXT:
            return True
        dot = name.find(".", dot + 1)
    return False


# Every byte that is *not* a suspicious control byte; deleting these leaves the suspicious ones,
# which counts them in C rather than in a Python loop (this runs on every file).
_NOT_CONTROL = bytes(b for b in range(256) if not ((b < 0x20 and b not in b"\t\n\r\f\b\x1b")
                                                   or b == 0x7F))


def is_binary(data: bytes) -> bool:
    """A NUL byte, or more than 30 % control bytes, in the first 8 KiB. Bytes >= 0x80 count as
    text so that UTF-8 and Latin-1 files are scanned."""
    head = data[:BINARY_SNIFF]
    if not head:
        return False
    if b"\x00" in head:
        return True
    control = len(head.translate(None, _NOT_CONTROL))
    return control * 10 > len(head) * 3


def shannon_entropy(value: bytes) -> float:
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PLACEHOLDER_WORDS = (
    b"changeme", b"change_me", b"change-me", b"example", b"placeholder", b"redacted",
    b"your_", b"your-", b"yourpass", b"<", b"${", b"{{", b"%(", b"$(", b"%s", b"xxxx",
    b"****", b"....", b"dummy", b"sample", b"replace", b"insert", b"todo", b"fixme",
    b"notreal", b"not_a_real", b"secretpass", b"password", b"passw0rd", b"p@ssw0rd",
    b"secret123", b"hunter2", b"letmein", b"qwerty", b"12345678", b"abcdef", b"env(",
    b"getenv", b"environ", b"process.env", b"settings.", b"config.", b"os.",
)
# Letters-only words joined by separators: names and labels, not generated secrets (which almost
# always hold digits). Passphrases of plain words are missed by this, a deliberate trade.
_WORDS = re.compile(rb"^[A-Za-z]{1,40}(?:[-_.][A-Za-z]{1,40}){1,12}$")
_REFERENCE = re.compile(rb"^(?:[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*){1,8}$")


def is_placeholder(value: bytes) -> bool:
    """Values that are templates, references or documentation rather than credentials."""
    low = value.lower()
    if len(set(low)) <= 2:  # "xxxxxxxx", "********", "aaaa"
        return True
    if low.startswith((b"$", b"%", b"@", b"&")) or low.endswith(b"}"):
        return True
    if _WORDS.match(value):  # my-app-db-credentials, X-Api-Key-Header-Name, bearer_access_token
        return True
    if _REFERENCE.match(value):  # settings.DB_PASSWORD, self.token
        return True
    if value.isupper() and b"_" in value and value.replace(b"_", b"").isalpha():
        return True  # an environment variable name: DB_PASSWORD
    return any(word in low for word in _PLACEHOLDER_WORDS)


_TEMPLATED = (b"xxxxxxxx", b"********", b"<", b"${", b"{{", b"%(")


def is_templated(value: bytes) -> bool:
    """Checked for every rule: documentation and templates that keep a token's prefix but fill
    the body with x's or a variable (``glpat-xxxxxxxxxxxxxxxxxxxx``, ``AKIA${KEY}``), and the
    example keys AWS publishes in its documentation (``AKIAIOSFODNN7EXAMPLE``)."""
    return b"EXAMPLE" in value or any(t in value.lower() for t in _TEMPLATED)


def mask(secret: str) -> str:
    """Keep at most the first four characters (fewer for short secrets) and star the rest, so
    a reader can tell keys apart without being able to use them."""
    keep = min(4, len(secret) // 4)
    return secret[:keep] + "*" * min(len(secret) - keep, 64)


def fingerprint(rule_id: str, path: str, secret: bytes) -> str:
    """A stable id for allow-listing one finding: it survives line moves and rebuilds but changes
    when the secret changes. Built from a hash of the secret, never the secret itself."""
    inner = hashlib.sha256(secret).hexdigest()
    outer = hashlib.sha256(f"{rule_id}\0{path}\0{inner}".encode()).hexdigest()
    return "sha256:" + outer[:40]


@dataclass(frozen=True, slots=True)
class AllowList:
    """Suppressions, as written under ``secret.allow`` in hullguard.yaml.

    ``paths`` are fnmatch globs over the file path ('*' crosses '/'); ``regexes`` are applied to
    the secret and to its line; ``fingerprints`` are ``match_fingerprint`` values from earlier
    reports.
    """

    rules: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    fingerprints: frozenset[str] = frozenset()
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(re.compile(r) for r in self.regexes))

    @classmethod
    def from_entries(cls, entries: Iterable[Any], where: str = "secrets.allow") -> AllowList:
        """The hullguard.yaml form: a list of one-key mappings, ``{rule: ID}``, ``{path: GLOB}``,
        ``{regex: RE}`` or ``{fingerprint: sha256:...}`` (a ``reason`` key may sit beside any of
        them). Raises ValueError naming the entry when one is malformed."""
        kinds: dict[str, list[str]] = {"rule": [], "path": [], "regex": [], "fingerprint": []}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ValueError(f"{where}[{i}] must be a mapping like {{rule: HG-SECRET-001}}")
            keys = [k for k in entry if k in kinds]
            extra = [k for k in entry if k not in kinds and k not in ("reason", "comment")]
            if len(keys) != 1 or extra:
                raise ValueError(f"{where}[{i}] needs exactly one of rule, path, regex, fingerprint")
            value = entry[keys[0]]
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}[{i}].{keys[0]} must be a non-empty string")
            if keys[0] == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"{where}[{i}].regex {value!r} is not a valid regular expression: {exc}") from None
            kinds[keys[0]].append(value)
        return cls(rules=frozenset(r.upper() for r in kinds["rule"]), paths=tuple(kinds["path"]),
                   regexes=tuple(kinds["regex"]), fingerprints=frozenset(kinds["fingerprint"]))

    def signature(self) -> str:
        """Changes whenever what this list suppresses changes (part of the layer-cache key)."""
        text = "\0".join([*sorted(self.rules), "|", *self.paths, "|", *self.regexes, "|", *sorted(self.fingerprints)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> AllowList:
        section = section or {}
        return cls(
            rules=frozenset(section.get("rules", ())),
            paths=tuple(section.get("paths", ())),
            regexes=tuple(section.get("regexes", ())),
            fingerprints=frozenset(section.get("fingerprints", ())),
        )

    def __bool__(self) -> bool:
        return bool(self.rules or self.paths or self.regexes or self.fingerprints)

    def allows(self, rule_id: str, path: str, fp: str = "", *texts: str) -> bool:
        if rule_id in self.rules or (fp and fp in self.fingerprints):
            return True
        # Image paths carry no leading slash while users write "/etc/..." as often as "etc/...".
        if path and any(fnmatch.fnmatchcase(path, g) or fnmatch.fnmatchcase(path, g.lstrip("/"))
                        for g in self.paths):
            return True
        return any(rx.search(t) for rx in self._compiled for t in texts if t)

    def filter_findings(self, findings: Iterable[Finding]) -> list[Finding]:
        """Drop allowed secret findings after the scan. Regexes see only the masked evidence
        here, so use them with ``Engine(allow=...)`` when they must see the raw value."""
        out = []
        for f in findings:
            if f.kind == "secret":
                path = f.location.path if f.location else f.target
                fp = str(f.details.get("match_fingerprint", ""))
                if self.allows(f.rule_id, path, fp, f.evidence):
                    continue
            out.append(f)
        return out


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """One raw match. ``secret`` is the clear value and must never leave the process: use
    ``masked`` and ``evidence`` for anything that is shown or stored."""

    rule: Rule
    path: str
    start: int  # offset of the whole match (context included)
    secret_start: int
    secret_end: int
    line: int  # 1-based line of ``start``
    line_start: int  # offset where that line begins
    secret: bytes = field(repr=False)
    fingerprint: str = ""

    @property
    def masked(self) -> str:
        return mask(self.secret.decode("utf-8", "replace"))


def evidence(match: SecretMatch, data: bytes, others: Sequence[SecretMatch] = ()) -> str:
    """The line holding ``match``, with every secret on it masked, trimmed to a readable width
    around the match."""
    ls = match.line_start
    le = data.find(b"\n", ls)
    le = len(data) if le == -1 else le
    spans = sorted(
        {(m.secret_start, m.secret_end) for m in (match, *others)
         if m.secret_start < le and m.secret_end > ls}
    )
    pieces: list[str] = []
    pos = ls
    focus = 0  # character offset of this match's secret in the rendered line
    for s, e in spans:
        s = max(s, pos)
        if s >= e:
            continue
        pieces.append(data[pos:s].decode("utf-8", "replace"))
        if s <= match.secret_start < e or (s, e) == (match.secret_start, match.secret_end):
            focus = sum(len(p) for p in pieces)
        # A secret running past the line end (a PEM body) is masked up to the line end only.
        pieces.append(mask(data[s:e].decode("utf-8", "replace")) if e <= le
                      else mask(data[s:le].decode("utf-8", "replace")))
        pos = min(e, le)
    if pos < le:
        pieces.append(data[pos:le].decode("utf-8", "replace"))
    text = "".join(pieces).rstrip("\r")
    if len(text) > EVIDENCE_WIDTH:
        lo = max(0, focus - EVIDENCE_WIDTH // 4)
        text = ("…" if lo else "") + text[lo:lo + EVIDENCE_WIDTH] + "…"
    return text.strip()


def _cache_path(exprs: list[bytes], flags: list[int]) -> Path | None:
    """Where a compiled database for exactly these expressions is kept. Compiling takes one to
    two seconds, which every CLI run would otherwise pay. The key covers the expressions, the
    flags and the hyperscan version; the file is only ever a cache (any error: recompile)."""
    if os.environ.get("HULLGUARD_NO_SECRET_DB_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    h = hashlib.sha256(str(getattr(_hs, "__version__", "")).encode())
    for expr, flag in zip(exprs, flags, strict=True):
        h.update(len(expr).to_bytes(4, "big") + expr + flag.to_bytes(4, "big"))
    return Path(base) / "hullguard" / "secrets" / f"{h.hexdigest()[:32]}.hsdb"


def _load_cached(path: Path | None) -> Any:
    if path is None or _hs is None:
        return None
    try:
        db = _hs.loadb(path.read_bytes(), _hs.HS_MODE_BLOCK)
        _hs.Scratch(db)  # proves the database is usable before trusting it
        return db
    except (OSError, _hs.error, TypeError, ValueError):
        return None


def _store_cached(path: Path | None, db: Any) -> None:
    if path is None or _hs is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_hs.dumpb(db))
        os.replace(tmp, path)  # atomic: concurrent scans never read half a file
    except OSError:
        pass


class _HyperscanIndex:
    """One block-mode database with a prefilter expression per rule and a caseless literal per
    keyword. ``hits`` returns the ids that fired at least once."""

    def __init__(self, rules: Sequence[Rule], keywords: Sequence[str]) -> None:
        assert _hs is not None
        self.n_rules = len(rules)
        base = _hs.HS_FLAG_PREFILTER | _hs.HS_FLAG_SINGLEMATCH | _hs.HS_FLAG_MULTILINE
        self.unfiltered: set[int] = set()
        # Line-local rules report every end offset (no SINGLEMATCH) so that re can confirm them
        # on those lines only; the others report once and are confirmed over the whole file.
        rule_flags = [
            (base & ~_hs.HS_FLAG_SINGLEMATCH if r.line_local else base)
            | (_hs.HS_FLAG_CASELESS if r.ignore_case else 0)
            for r in rules
        ]
        self.line_local = frozenset(i for i, r in enumerate(rules) if r.line_local)
        kw_exprs = [re.escape(kw.encode()) for kw in keywords]
        kw_flags = [_hs.HS_FLAG_CASELESS | _hs.HS_FLAG_SINGLEMATCH] * len(keywords)
        all_exprs = [r.regex.encode() for r in rules] + kw_exprs
        cache = _cache_path(all_exprs, rule_flags + kw_flags)
        cached = _load_cached(cache)
        if cached is not None:
            self.db = cached
            self._local = threading.local()
            return
        try:
            self.db = self._compile(all_exprs, rule_flags + kw_flags)
            _store_cached(cache, self.db)
        except _hs.error:
            # Find the rules Hyperscan rejects (slow, one by one); they are always confirmed
            # with re instead, which keeps results identical at some cost in speed.
            keep = []
            for i, rule in enumerate(rules):
                try:
                    self._compile([rule.regex.encode()], [rule_flags[i]])
                    keep.append(i)
                except _hs.error:
                    self.unfiltered.add(i)
            self.db = self._compile(
                [rules[i].regex.encode() for i in keep] + kw_exprs,
                [rule_flags[i] for i in keep] + kw_flags,
                keep + [self.n_rules + j for j in range(len(keywords))],
            )
        self._local = threading.local()

    @staticmethod
    def _compile(exprs: list[bytes], flags: list[int], ids: list[int] | None = None) -> Any:
        assert _hs is not None
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=ids if ids is not None else list(range(len(exprs))),
                   elements=len(exprs), flags=flags)
        return db

    def hits(self, data: bytes) -> tuple[set[int], dict[int, list[int]]]:
        """Ids that fired, and for line-local rules the end offsets where they fired (None-like
        absence of a rule from the dict means "too many to list; confirm the whole file")."""
        assert _hs is not None
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = _hs.Scratch(self.db)
        found: set[int] = set()
        ends: dict[int, list[int]] = {}
        overflow: set[int] = set()
        line_local = self.line_local

        def on_match(id_: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            found.add(id_)
            if id_ in line_local and id_ not in overflow:
                lst = ends.setdefault(id_, [])
                lst.append(to)
                if len(lst) > MAX_PREFILTER_ENDS:
                    overflow.add(id_)
                    del ends[id_]

        self.db.scan(data, match_event_handler=on_match, scratch=scratch)
        return found, ends


class Engine:
    """Scan bytes for secrets. Build once and reuse: compiling is the expensive part."""

    def __init__(
        self,
        rules: Sequence[Rule] = RULES,
        *,
        use_hyperscan: bool | None = None,
        max_size: int = MAX_SIZE,
        allow: AllowList | None = None,
        skip_default_paths: bool = True,
    ) -> None:
        if use_hyperscan and _hs is None:
            raise RuntimeError("hyperscan is not installed")
        self.rules = tuple(rules)
        self.max_size = max_size
        self.allow = allow or AllowList()
        self.skip_default_paths = skip_default_paths
        self._patterns = [
            re.compile(r.regex.encode(), re.MULTILINE | (re.IGNORECASE if r.ignore_case else 0))
            for r in self.rules
        ]
        self.keywords = sorted({k for r in self.rules for k in r.keywords})
        kw_index = {k: i for i, k in enumerate(self.keywords)}
        self._rule_kw = [tuple(kw_index[k] for k in r.keywords) for r in self.rules]
        self._kw_bytes = [k.encode() for k in self.keywords]
        self._hs: _HyperscanIndex | None = None
        if use_hyperscan is not False and _hs is not None:
            self._hs = _HyperscanIndex(self.rules, self.keywords)

    def __reduce__(self) -> tuple[Any, ...]:
        # A compiled hyperscan database cannot be pickled; a worker process rebuilds the engine
        # from its settings instead (layers may be analysed in a process pool).
        return (_rebuild, (self.rules, self._hs is not None, self.max_size, self.allow,
                           self.skip_default_paths))

    @property
    def backend(self) -> str:
        return "hyperscan" if self._hs is not None else "re"

    def skip_reason(self, data: bytes, path: str = "") -> str | None:
        if len(data) > self.max_size:
            return f"larger than {self.max_size} bytes"
        if self.skip_default_paths and path and should_skip_path(path):
            return "third-party or distribution path"
        if is_binary(data):
            return "binary"
        return None

    def _candidates(self, data: bytes) -> tuple[list[int], dict[int, list[int]]]:
        """Rules worth confirming with re and, for line-local rules under hyperscan, the
        prefilter end offsets that say which lines to confirm them on."""
        n = len(self.rules)
        ends: dict[int, list[int]] = {}
        if self._hs is not None:
            hits, ends = self._hs.hits(data)
            present = {i - n for i in hits if i >= n}
            # Only rules the prefilter could not rule out are looked at (usually a handful).
            rule_ids: Iterable[int] = sorted({i for i in hits if i < n} | self._hs.unfiltered)
        else:
            lowered = data.lower()
            present = {i for i, k in enumerate(self._kw_bytes) if k in lowered}
            rule_ids = range(n)
        out = []
        for i in rule_ids:
            kws = self._rule_kw[i]
            if kws and not any(k in present for k in kws):
                continue
            out.append(i)
            if self._hs is None and kws and self.rules[i].line_local:
                # Every match of a line-local rule contains one of its keywords (a rules.py
                # convention, tested), so only lines holding a keyword need re.
                found = self._keyword_ends(lowered, kws)
                if found is not None:
                    ends[i] = found
        return out, ends

    def _keyword_ends(self, lowered: bytes, kws: tuple[int, ...]) -> list[int] | None:
        out: list[int] = []
        for k in kws:
            kw = self._kw_bytes[k]
            pos = lowered.find(kw)
            while pos != -1:
                out.append(pos + len(kw))
                if len(out) > MAX_PREFILTER_ENDS:
                    return None
                pos = lowered.find(kw, pos + 1)
        return out

    def _finditer(self, i: int, data: bytes, ends: list[int] | None) -> Iterable[re.Match[bytes]]:
        pattern = self._patterns[i]
        if ends is None:
            yield from pattern.finditer(data)
            return
        # Every real match ends where the prefilter fired (or, for the re backend, holds a
        # keyword ending at one of ``ends``), and a line-local match lies inside one line.
        # Scanning those lines (with their newline, so that \b, $ and lookarounds see what
        # they would see in the whole file) therefore finds the same matches.
        done = -1
        for to in sorted(ends):
            if to <= done:
                continue
            ls = data.rfind(b"\n", 0, max(to - 1, 0)) + 1
            le = data.find(b"\n", max(to - 1, 0))
            le = len(data) if le == -1 else le + 1
            yield from pattern.finditer(data, ls, le)
            done = le

    def scan(self, data: bytes, path: str = "") -> list[SecretMatch]:
        """All matches in ``data`` (the content of ``path``), ordered by offset then rule id.
        Returns nothing for skipped files; call ``skip_reason`` to learn why."""
        if self.skip_reason(data, path) is not None:
            return []
        raw: list[tuple[int, int, int, int]] = []  # (start, rule index, secret start, end)
        candidates, ends = self._candidates(data)
        for i in candidates:
            rule = self.rules[i]
            if rule.paths and not any(fnmatch.fnmatchcase(path, g) for g in rule.paths):
                continue
            for m in self._finditer(i, data, ends.get(i)):
                s, e = m.span(rule.group)
                if s < 0:
                    continue
                value = data[s:e]
                if rule.min_length and e - s < rule.min_length:
                    continue
                if rule.entropy and shannon_entropy(value) < rule.entropy:
                    continue
                if is_templated(value) or (rule.reject_placeholders and is_placeholder(value)):
                    continue
                raw.append((m.start(), i, s, e))
                if len(raw) >= MAX_MATCHES_PER_FILE:
                    break
        raw.sort()
        raw = self._drop_generic_overlaps(raw)
        out: list[SecretMatch] = []
        line, counted_to = 1, 0
        for start, i, s, e in raw[:MAX_MATCHES_PER_FILE]:
            # Offsets are sorted, so newlines are counted once over the whole file.
            line += data.count(b"\n", counted_to, start)
            counted_to = start
            rule = self.rules[i]
            secret = data[s:e]
            fp = fingerprint(rule.id, path, secret)
            if self.allow and self._allowed(rule, path, fp, secret, data, start):
                continue
            out.append(SecretMatch(
                rule=rule, path=path, start=start, secret_start=s, secret_end=e, line=line,
                line_start=data.rfind(b"\n", 0, start) + 1, secret=secret, fingerprint=fp,
            ))
        return out

    def _drop_generic_overlaps(
        self, raw: list[tuple[int, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        # `GITHUB_TOKEN=ghp_...` matches both the GitHub rule and the generic token rule, and an
        # Azure connection string matches both Azure rules: one secret, one finding. A generic
        # match overlapping a specific one is dropped; among specific matches of the same span
        # the lowest rule id wins (provider rules come before the URL rules).
        specific = [(s, e) for _, i, s, e in raw if self.rules[i].category != "generic"]
        best: dict[tuple[int, int], int] = {}
        for _, i, s, e in raw:
            if self.rules[i].category != "generic":
                best[(s, e)] = min(i, best.get((s, e), i))
        out = []
        for item in raw:
            _, i, s, e = item
            if self.rules[i].category == "generic" and any(
                a < e and s < b for a, b in specific
            ):
                continue
            if best.get((s, e), i) != i:
                continue
            out.append(item)
        return out

    def _allowed(
        self, rule: Rule, path: str, fp: str, secret: bytes, data: bytes, start: int
    ) -> bool:
        ls = data.rfind(b"\n", 0, start) + 1
        le = data.find(b"\n", start)
        line = data[ls: le if le != -1 else len(data)]
        return self.allow.allows(
            rule.id, path, fp, secret.decode("utf-8", "replace"), line.decode("utf-8", "replace")
        )


def _rebuild(rules: tuple[Rule, ...], use_hs: bool, max_size: int, allow: AllowList,
             skip_default_paths: bool) -> Engine:
    return Engine(rules, use_hyperscan=use_hs and _hs is not None, max_size=max_size, allow=allow,
                  skip_default_paths=skip_default_paths)


_default: dict[bool, Engine] = {}
_compiled: dict[tuple[bool, frozenset[str]], Engine] = {}
_default_lock = threading.Lock()


@dataclass(frozen=True)
class DefaultSettings:
    """What hullguard.yaml's ``secrets`` section changes about the shared engine."""

    allow: AllowList = field(default_factory=AllowList)
    disabled_rules: frozenset[str] = frozenset()
    max_size: int = MAX_SIZE

    def signature(self) -> str:
        """Empty for the built-in defaults, else a short id of these settings: analyzer results
        cached under one set of settings must not be reused under another."""
        if self == DefaultSettings():
            return ""
        text = f"{self.allow.signature()};{','.join(sorted(self.disabled_rules))};{self.max_size}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_settings = DefaultSettings()


def configure_defaults(settings: DefaultSettings | None = None) -> None:
    """Set the allow-list, disabled rules and size cap of ``default_engine()`` for this process
    (the CLI calls it once with the hullguard.yaml ``secrets`` section; None restores the
    built-in defaults)."""
    global _settings
    new = settings or DefaultSettings()
    unknown = new.disabled_rules - {r.id for r in RULES}
    if unknown:
        raise ValueError(f"secrets.disable-rules: unknown rule {sorted(unknown)[0]!r} (see 'hullguard rules list')")
    with _default_lock:
        if new != _settings:
            _settings = new
            _default.clear()


def default_settings() -> DefaultSettings:
    return _settings


def redaction_engine() -> Engine:
    """The shared engine without the allow-list: an allowed secret is not reported, but the
    report must still not print it in clear (image config, history)."""
    engine = default_engine()
    if not engine.allow:
        return engine
    bare = copy.copy(engine)
    bare.allow = AllowList()
    return bare


def default_engine(use_hyperscan: bool | None = None) -> Engine:
    """A shared engine over all enabled rules (compiled once per process)."""
    key = _hs is not None if use_hyperscan is None else use_hyperscan
    with _default_lock:
        if key not in _default:
            s = _settings
            base_key = (key, s.disabled_rules)
            if base_key not in _compiled:
                rules = [r for r in RULES if r.id not in s.disabled_rules] if s.disabled_rules else RULES
                _compiled[base_key] = Engine(rules, use_hyperscan=key)
            # The allow-list and size cap are applied after matching: share the compiled database
            # (the expensive part) instead of compiling it again for every allow-list.
            engine = copy.copy(_compiled[base_key])
            engine.allow, engine.max_size = s.allow, s.max_size
            _default[key] = engine
        return _default[key]
