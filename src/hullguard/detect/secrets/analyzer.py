"""The secret analyzer: engine matches become masked ``Finding`` facts.

Runs per layer like every analyzer, so a secret in a file that a later layer deletes is still
reported (assemble.py marks it ``deleted_in_later_layer``).

The hullguard.yaml ``secrets`` section (allow-list, disabled rules, size cap) reaches the analyzer
through ``engine.configure_defaults``: the shared engine applies it while matching, so allow-list
regexes see the clear value and its line. The analyzer's cache version carries a signature of
those settings, so layer results cached under other settings are never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from hullguard.detect.secrets.engine import (
    MAX_SIZE,
    Engine,
    SecretMatch,
    default_engine,
    default_settings,
    evidence,
    mask,
    redaction_engine,
    should_skip_path,
)
from hullguard.inventory.base import Analyzer, FileInfo
from hullguard.model import Fact, Finding, Location


def _finding(match: SecretMatch, data: bytes, same_file: Sequence[SecretMatch],
             target: str, location: Location, extra: dict[str, Any] | None = None) -> Finding:
    rule = match.rule
    details: dict[str, Any] = {
        "match_fingerprint": match.fingerprint,
        "category": rule.category,
        "rule_name": rule.slug,
    }
    if extra:
        details.update(extra)
    return Finding(
        kind="secret",
        rule_id=rule.id,
        severity=rule.severity,
        title=rule.title,
        target=target,
        location=location,
        fix=rule.remediation,
        evidence=evidence(match, data, same_file),
        details=details,
    )


def _mark_aws_pairs(findings: list[Finding]) -> None:
    # An access key id alone is an identifier; next to its secret key it is a working login.
    ids = {f.rule_id for f in findings}
    if {"HG-SECRET-001", "HG-SECRET-002"} <= ids:
        for f in findings:
            if f.rule_id in ("HG-SECRET-001", "HG-SECRET-002"):
                f.details = {**f.details, "paired_with_aws_key": True}


class SecretAnalyzer(Analyzer):
    name: ClassVar[str] = "secret"
    version: ClassVar[int] = 1
    max_size: ClassVar[int] = MAX_SIZE

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine
        if engine is None:
            settings = default_settings()
            self.max_size = settings.max_size  # type: ignore[misc]
            if settings.signature():
                self.version = f"{type(self).version}+{settings.signature()}"  # type: ignore[misc]

    @property
    def engine(self) -> Engine:
        # Built lazily: compiling the database costs ~1.5 s and is wasted when the secret
        # scanner is not selected.
        if self._engine is None:
            self._engine = default_engine()
        return self._engine

    def wants(self, info: FileInfo) -> bool:
        if info.size <= 0 or info.size > self.max_size:
            return False
        if self._engine is not None and not self._engine.skip_default_paths:
            return True
        return not should_skip_path(info.path)

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        matches = self.engine.scan(data, info.path)
        by_line: dict[int, list[SecretMatch]] = {}
        for m in matches:
            by_line.setdefault(m.line_start, []).append(m)
        findings = [
            _finding(m, data, by_line[m.line_start], info.path,
                     Location(path=info.path, line=m.line))
            for m in matches
        ]
        _mark_aws_pairs(findings)
        return findings


def _config_texts(config: dict[str, Any], history: list[dict[str, Any]]
                  ) -> Iterable[tuple[str, int, str]]:
    """(where, 1-based index, text) for every string in the image config that can hold a
    secret."""
    for i, env in enumerate(config.get("Env") or [], 1):
        if isinstance(env, str):
            yield "Env", i, env
    labels = config.get("Labels") or {}
    if isinstance(labels, dict):
        for i, (key, value) in enumerate(sorted(labels.items()), 1):
            yield "Labels", i, f"{key}={value}"
    for key in ("Cmd", "Entrypoint"):
        value = config.get(key)
        if isinstance(value, list) and value:
            yield key, 1, " ".join(str(v) for v in value)
    for i, entry in enumerate(history or [], 1):
        created_by = entry.get("created_by") if isinstance(entry, dict) else None
        if isinstance(created_by, str) and created_by:
            yield "history", i, created_by


def scan_image_config(
    config: dict[str, Any], history: list[dict[str, Any]], engine: Engine | None = None
) -> list[Finding]:
    """Secrets in the image configuration: ``Env`` and ``Labels`` (visible to anyone who pulls
    the image), ``Cmd``/``Entrypoint``, and the build history, where ``ARG`` values used by a
    ``RUN`` and every ``ENV`` are recorded in ``created_by`` even when a later layer unsets them.

    Each finding's location path is ``image-config:<field>`` and its line is the 1-based index
    of the entry (Env item, sorted label, history entry).
    """
    engine = engine or default_engine()
    findings: list[Finding] = []
    for where, index, text in _config_texts(config, history):
        # Env entries are KEY=VALUE, which generic rules read as an assignment already.
        data = text.encode("utf-8", "replace")
        pseudo_path = f"image-config:{where}"
        matches = engine.scan(data, pseudo_path) if data else []
        for m in matches:
            findings.append(_finding(
                m, data, matches, "image config",
                Location(path=pseudo_path, line=index),
                {"source": where, "index": index},
            ))
    _mark_aws_pairs(findings)
    return findings


def redact_text(text: str, where: str, engine: Engine | None = None) -> str:
    """``text`` with every secret the engine finds in it masked (for config strings that a report
    would otherwise print verbatim)."""
    engine = engine or redaction_engine()
    data = text.encode("utf-8", "replace")
    matches = engine.scan(data, f"image-config:{where}") if data else []
    for m in sorted(matches, key=lambda m: m.secret_start, reverse=True):
        secret = data[m.secret_start : m.secret_end].decode("utf-8", "replace")
        data = data[: m.secret_start] + mask(secret).encode() + data[m.secret_end :]
    return data.decode("utf-8", "replace")


def redact_image_config(config: dict[str, Any], history: list[dict[str, Any]],
                        engine: Engine | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Copies of the config and history with secrets masked: the secret findings mask their
    evidence, and the report must not print the same values elsewhere."""
    engine = engine or redaction_engine()
    config = dict(config)
    if isinstance(config.get("Env"), list):
        config["Env"] = [redact_text(e, "Env", engine) if isinstance(e, str) else e for e in config["Env"]]
    if isinstance(config.get("Labels"), dict):
        config["Labels"] = {k: redact_text(f"{k}={v}", "Labels", engine).split("=", 1)[1]
                            if isinstance(v, str) else v for k, v in config["Labels"].items()}
    for key in ("Cmd", "Entrypoint"):
        if isinstance(config.get(key), list):
            config[key] = [redact_text(v, key, engine) if isinstance(v, str) else v for v in config[key]]
    history = [
        {**h, "created_by": redact_text(h["created_by"], "history", engine)}
        if isinstance(h, dict) and isinstance(h.get("created_by"), str) else h
        for h in history
    ]
    return config, history
