"""hullguard.yaml: per-command defaults and the secret allow-list.

Precedence, highest first: command-line flags > ``HULLGUARD_*`` environment variables >
hullguard.yaml. The file is ``--config FILE`` (before the command), else ``$HULLGUARD_CONFIG``, else
``./hullguard.yaml`` when it exists.

Keys mirror the long option names of each command, so the file needs no schema of its own: every
option a command has is a key of its section (``image: {severity: HIGH}``); ``scan:`` applies to
image, fs and sbom alike, and a command's own section wins over it. Nested commands nest
(``rules: {list: {policy: [...]}}``). Values are applied as argparse defaults, which is what
makes an explicit flag win. Environment variables are named after the option
(``--exit-code`` -> ``HULLGUARD_EXIT_CODE``) and apply to every command that has that option.

``secrets:`` is the one section that is not a command: the allow-list, disabled rules and the
per-file size cap of secret scanning.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hullguard.model import HullguardError

__all__ = [
    "ENV_CONFIG",
    "SETTINGS_FILE",
    "Settings",
    "SettingsError",
    "apply_settings",
    "find_settings_file",
    "load_settings",
]

SETTINGS_FILE = "hullguard.yaml"
ENV_CONFIG = "HULLGUARD_CONFIG"
ENV_PREFIX = "HULLGUARD_"
MAX_SETTINGS_BYTES = 1024 * 1024
SCAN_COMMANDS = ("image", "fs", "sbom")
SECRETS_KEYS = ("allow", "disable-rules", "max-file-size")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(HullguardError):
    pass


class _NotAChoice(SettingsError):
    pass


@dataclass
class Settings:
    path: str = ""
    sections: dict[str, Any] = field(default_factory=dict)
    secrets: Any = None  # engine.DefaultSettings when the file has a secrets section
    warnings: list[str] = field(default_factory=list)


def find_settings_file(explicit: str | None, env: Mapping[str, str]) -> str | None:
    """The settings file to read: an explicit one must exist; the default one may be absent."""
    chosen = explicit or env.get(ENV_CONFIG) or ""
    if chosen:
        if not os.path.isfile(chosen):
            source = "--config" if explicit else ENV_CONFIG
            raise SettingsError(f"{source} {chosen}: no such file")
        return chosen
    return SETTINGS_FILE if os.path.isfile(SETTINGS_FILE) else None


def load_settings(path: str | None) -> Settings:
    if not path:
        return Settings()
    from hullguard.fileio import read_bounded
    from hullguard.inventory._yaml import YamlError, load_yaml

    data = read_bounded(path, MAX_SETTINGS_BYTES, error=SettingsError)
    try:
        doc = load_yaml(data, typed_scalars=True)
    except (YamlError, ValueError) as exc:
        raise SettingsError(f"{path}: invalid YAML: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if doc is None:
        return Settings(path=path)
    if not isinstance(doc, dict):
        raise SettingsError(f"{path}: must be a mapping of command names to options")
    settings = Settings(path=path, sections={str(k): v for k, v in doc.items()})
    if "secrets" in settings.sections:
        section = settings.sections.pop("secrets")
        settings.secrets = _secret_settings(section, path)
        settings.warnings += [f"{path}: secrets: unknown key {k!r} (ignored)" for k in section
                              if k not in SECRETS_KEYS]
        if settings.secrets is not None:
            from hullguard.detect.secrets.rules import RULES

            known = {r.id for r in RULES}
            settings.warnings += [f"{path}: secrets.allow: no secret rule {r!r} (see 'hullguard rules list')"
                                  for r in sorted(settings.secrets.allow.rules - known)]
    return settings


def _secret_settings(section: Any, path: str) -> Any:
    from hullguard.detect.secrets.engine import MAX_SIZE, AllowList, DefaultSettings

    if section is None:
        return None
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: secrets must be a mapping (allow, disable-rules, max-file-size)")
    allow = section.get("allow") or []
    if not isinstance(allow, list):
        raise SettingsError(f"{path}: secrets.allow must be a list of {{rule|path|regex|fingerprint: ...}}")
    try:
        allow_list = AllowList.from_entries(allow)
    except ValueError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    disabled = section.get("disable-rules") or []
    if not isinstance(disabled, list) or not all(isinstance(r, str) for r in disabled):
        raise SettingsError(f"{path}: secrets.disable-rules must be a list of rule ids")
    max_size = MAX_SIZE
    if section.get("max-file-size") is not None:
        raw = section["max-file-size"]
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise SettingsError(f"{path}: secrets.max-file-size must be a size like 10M")
        try:
            from hullguard.cli.scan import parse_size

            max_size = parse_size(str(raw))
        except argparse.ArgumentTypeError as exc:
            raise SettingsError(f"{path}: secrets.max-file-size: {exc}") from None
    return DefaultSettings(allow=allow_list, disabled_rules=frozenset(r.upper() for r in disabled),
                           max_size=max_size)


# --------------------------------------------------------------------------------------------------
# applying to the parser

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    out = {}
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        for opt in action.option_strings:
            if opt.startswith("--"):
                out[opt[2:]] = action
    return out


def _is_list(action: argparse.Action) -> bool:
    return isinstance(action, (argparse._AppendAction, argparse._ExtendAction)) or action.nargs in ("+", "*")


def _convert_one(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, (dict, list)) or value is None:
        raise SettingsError(f"{where}: expected a single value")
    if action.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise SettingsError(f"{where}: expected a number")
        try:
            converted = action.type(value) if not isinstance(value, float) or action.type is float else None
        except ValueError:
            converted = None
        if converted is None or (action.type is int and isinstance(value, float)):
            raise SettingsError(f"{where}: expected {'an integer' if action.type is int else 'a number'}, "
                                f"not {value!r}")
    elif isinstance(value, bool):
        raise SettingsError(f"{where}: expected a string, not {str(value).lower()}")
    elif action.type is not None:
        try:
            converted = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise SettingsError(f"{where}: {exc}") from None
    else:
        converted = str(value)
    if action.choices is not None and converted not in action.choices:
        raise _NotAChoice(f"{where}: {converted!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


def _convert(action: argparse.Action, value: Any, where: str, *, from_env: bool) -> Any:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if from_env:
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise SettingsError(f"{where}: expected true or false, not {value!r}")
            flag = text in _TRUE
        elif isinstance(value, bool):
            flag = value
        else:
            raise SettingsError(f"{where}: expected true or false, not {value!r}")
        return flag if isinstance(action, argparse._StoreTrueAction) else not flag
    if _is_list(action):
        if from_env:
            items = [v.strip() for v in str(value).split(",") if v.strip()]
        else:
            items = value if isinstance(value, list) else [value]
        return [_convert_one(action, v, f"{where}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, list) and not from_env:
        # Comma-separated options (--scanners, --severity) read naturally as YAML lists.
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise SettingsError(f"{where}: expected a list of strings")
        value = ",".join(str(v) for v in value)
    return _convert_one(action, value, where)


def _flags_replace_list(action: argparse.Action) -> None:
    """An append option whose default came from settings: the first flag on the command line
    starts a new list instead of adding to the file's (flags win, they do not merge)."""
    base = type(action)
    if getattr(base, "_hullguard_replaces", False):
        return

    class Replacing(base):  # type: ignore[valid-type, misc]
        _hullguard_replaces = True

        def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
            if getattr(namespace, self.dest, None) is self.default:
                setattr(namespace, self.dest, [])
            super().__call__(parser, namespace, values, option_string)

    action.__class__ = Replacing


def _set_default(parser: argparse.ArgumentParser, action: argparse.Action, value: Any) -> None:
    parser.set_defaults(**{action.dest: value})
    if isinstance(action, (argparse._AppendAction, argparse._ExtendAction)):
        _flags_replace_list(action)


def _apply_section(parser: argparse.ArgumentParser, section: Any, where: str, warnings: list[str],
                   also: tuple[argparse.ArgumentParser, ...] = ()) -> None:
    """Apply one section to ``parser`` (and, for ``scan:``, to the parsers in ``also``); keys no
    target knows become warnings."""
    if not isinstance(section, dict):
        raise SettingsError(f"{where}: must be a mapping of option names to values")
    targets = (parser, *also)
    for key, value in section.items():
        key = str(key)
        hit = False
        for target in targets:
            opts = _options(target)
            subs = _subcommands(target)
            if key in opts:
                _set_default(target, opts[key], _convert(opts[key], value, f"{where}.{key}", from_env=False))
                hit = True
            elif key in subs and isinstance(value, dict):
                _apply_section(subs[key], value, f"{where}.{key}", warnings)
                hit = True
        if not hit:
            warnings.append(f"{where}: unknown key {key!r} (ignored)")


def _invoked(parser: argparse.ArgumentParser, argv: list[str]) -> list[argparse.ArgumentParser]:
    """The chain of (sub)parsers that ``argv`` selects, outermost first."""
    chain = [parser]
    for token in argv:
        subs = _subcommands(chain[-1])
        if token in subs:
            chain.append(subs[token])
        elif not subs:
            break
    return chain


def config_option(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """``--config FILE`` given before the command (read before parsing: the file's values become
    the parser's defaults)."""
    commands = _subcommands(parser)
    for i, token in enumerate(argv):
        if token in commands:
            break
        if token == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if token.startswith("--config="):
            return token.split("=", 1)[1]
    return None


def apply_settings(parser: argparse.ArgumentParser, argv: list[str], env: Mapping[str, str] | None = None,
                   settings: Settings | None = None) -> tuple[Settings, list[str]]:
    """Load hullguard.yaml (unless ``settings`` is given) and the environment into ``parser``'s
    defaults; returns the settings and warnings (unknown keys). Raises SettingsError on a bad file
    or a bad value."""
    env = os.environ if env is None else env
    if settings is None:
        settings = load_settings(find_settings_file(config_option(argv, parser), env))
    warnings: list[str] = list(settings.warnings)
    label = settings.path or SETTINGS_FILE
    commands = _subcommands(parser)
    sections = dict(settings.sections)
    scan = sections.pop("scan", None)
    if scan is not None:
        scan_parsers = tuple(commands[c] for c in SCAN_COMMANDS if c in commands)
        if scan_parsers:
            _apply_section(scan_parsers[0], scan, f"{label}: scan", warnings, also=scan_parsers[1:])
    for name, section in sections.items():
        if name in commands:
            _apply_section(commands[name], section, f"{label}: {name}", warnings)
        else:
            warnings.append(f"{label}: unknown key {name!r} (not a command, 'scan' or 'secrets'; ignored)")
    # Environment variables only for the command being run: one variable serves every command
    # with that option, and a value fine for one (HULLGUARD_FORMAT=cyclonedx) may not suit another.
    for sub in _invoked(parser, argv)[1:]:
        for name, action in _options(sub).items():
            var = ENV_PREFIX + name.upper().replace("-", "_")
            if var not in env or var == ENV_CONFIG:
                continue
            try:
                value = _convert(action, env[var], var, from_env=True)
            except _NotAChoice as exc:
                # One variable serves several commands; a value only some of them accept is
                # skipped here, not fatal (HULLGUARD_FORMAT=cyclonedx with `hullguard config`).
                warnings.append(f"{exc} for this command (ignored)")
                continue
            _set_default(sub, action, value)
    return settings, warnings
