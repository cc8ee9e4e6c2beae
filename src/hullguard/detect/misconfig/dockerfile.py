"""Dockerfile parser and checks (HG-DF-*).

The parser follows the Dockerfile reference rather than a line regex: parser directives
(``# syntax=``, ``# escape=``) only at the very top, line continuations with the escape character,
comment and blank lines dropped inside continuations, heredocs (``<<EOF``, ``<<-EOF``, quoted
delimiters, several per instruction), exec (JSON) versus shell form, ``--flags`` before the
arguments, ``FROM x AS y`` stages and ``ARG`` before the first ``FROM``. Every instruction keeps
the line it starts on so findings point at it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from hullguard.model import Finding, Location, Severity

from .rules import Rule, register

__all__ = [
    "RULES",
    "Dockerfile",
    "DockerfileError",
    "Heredoc",
    "Instruction",
    "Stage",
    "check_dockerfile",
    "check_dockerfile_path",
    "parse_dockerfile",
]

MAX_DOCKERFILE_BYTES = 4 * 1024 * 1024  # real Dockerfiles are kilobytes; anything bigger is not one


class DockerfileError(ValueError):
    """The input is not a Dockerfile we can read (binary, too big, bad directive)."""


@dataclass
class Heredoc:
    name: str
    content: str
    chomp: bool  # <<- strips leading tabs
    expand: bool  # an unquoted delimiter means variables are expanded


@dataclass
class Instruction:
    cmd: str  # upper case keyword
    value: str  # arguments after the flags, continuations joined, as written
    line: int  # 1-based line of the keyword
    end_line: int
    original: str
    flags: dict[str, list[str]] = field(default_factory=dict)
    json: bool = False  # exec form
    args: list[str] = field(default_factory=list)  # exec form words, or shell words
    heredocs: list[Heredoc] = field(default_factory=list)
    stage: int = -1  # -1 for global ARGs before the first FROM
    sub: Instruction | None = None  # ONBUILD's trigger

    def flag(self, name: str) -> str | None:
        vals = self.flags.get(name)
        return vals[-1] if vals else None


@dataclass
class Stage:
    index: int
    base: str  # image reference with global ARGs substituted
    base_raw: str
    name: str
    line: int
    platform: str = ""
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    directives: dict[str, str]
    escape: str
    instructions: list[Instruction]
    stages: list[Stage]
    global_args: dict[str, str | None]
    errors: list[tuple[int, str]] = field(default_factory=list)


_DIRECTIVE = re.compile(r"^#[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*(.*?)[ \t]*$")
_KNOWN_DIRECTIVES = {"syntax", "escape", "check"}
_HEREDOC_CMDS = {"RUN", "COPY", "ADD"}
# A heredoc marker: << then optional '-' then an optionally quoted word. '<<<' (here-string) is not one.
_HEREDOC = re.compile(r"(?<!<)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_EXEC_CMDS = {"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"}
_FLAG_CMDS = {"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"}


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if len(data) > MAX_DOCKERFILE_BYTES:
        raise DockerfileError(f"file larger than {MAX_DOCKERFILE_BYTES} bytes is not a Dockerfile")
    if b"\x00" in data[:8192]:
        raise DockerfileError("binary file, not a Dockerfile")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.decode("utf-8", errors="replace")


def _split_flags(rest: str) -> tuple[dict[str, list[str]], str]:
    """Peel leading ``--name[=value]`` words off; the remainder keeps its original spacing."""
    flags: dict[str, list[str]] = {}
    pos = 0
    while True:
        m = re.match(r"[ \t]*--([A-Za-z][A-Za-z0-9-]*)(?:=((?:\"[^\"]*\"|'[^']*'|[^ \t])*))?(?=[ \t]|$)", rest[pos:])
        if not m:
            break
        val = m.group(2)
        if val is not None and len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        flags.setdefault(m.group(1).lower(), []).append("" if val is None else val)
        pos += m.end()
    return flags, rest[pos:].strip()


def _exec_form(value: str) -> list[str] | None:
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


def _substitute(text: str, env: dict[str, str | None]) -> str:
    """Expand $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt} as the builder does for FROM."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        op, word = m.group(3), m.group(4) or ""
        val = env.get(name)
        if op == ":-":
            return val if val else word
        if op == ":+":
            return word if val else ""
        return val or ""

    return re.sub(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\})", repl, text)


def _make_instruction(text: str, line: int, end_line: int, original: str, heredocs: list[Heredoc]) -> Instruction:
    parts = text.strip().split(None, 1)
    cmd = parts[0].upper()
    rest = parts[1] if len(parts) > 1 else ""
    if cmd == "ONBUILD" and rest:
        sub = _make_instruction(rest, line, end_line, original, heredocs)
        return Instruction(cmd=cmd, value=rest, line=line, end_line=end_line, original=original, sub=sub)
    flags: dict[str, list[str]] = {}
    if cmd in _FLAG_CMDS:
        flags, rest = _split_flags(rest)
    inst = Instruction(cmd=cmd, value=rest.strip(), line=line, end_line=end_line, original=original, flags=flags)
    inst.heredocs = heredocs
    exec_args = _exec_form(inst.value) if cmd in _EXEC_CMDS else None
    if exec_args is not None:
        inst.json = True
        inst.args = exec_args
    else:
        inst.args = _shell_words(inst.value) if cmd != "RUN" else []
    return inst


def parse_dockerfile(data: bytes | str) -> Dockerfile:
    text = _decode(data)
    lines = text.splitlines()
    directives: dict[str, str] = {}
    i = 0
    # Directives must come first; the first line that is not one (even a blank line or a plain
    # comment) ends the directive block, and later look-alikes are ordinary comments.
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m or m.group(1).lower() not in _KNOWN_DIRECTIVES or m.group(1).lower() in directives:
            break
        directives[m.group(1).lower()] = m.group(2)
        i += 1
    escape = directives.get("escape", "\\") or "\\"
    errors: list[tuple[int, str]] = []
    if escape not in ("\\", "`"):
        errors.append((1, f"invalid escape directive {escape!r}; only \\ and ` are allowed"))
        escape = "\\"
    cont = re.compile(re.escape(escape) + r"[ \t]*$")

    instructions: list[Instruction] = []
    n = len(lines)
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        original = [raw]
        cur = raw
        while True:
            m = cont.search(cur)
            if not m:
                parts.append(cur.strip())
                break
            parts.append(cur[: m.start()].strip())
            i += 1
            # Comment lines and blank lines inside a continuation are dropped, not joined.
            while i < n and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                original.append(lines[i])
                i += 1
            if i >= n:
                break
            cur = lines[i]
            original.append(cur)
        joined = " ".join(p for p in parts if p)
        end = min(i, n - 1)  # a continuation at end of file ends on the last line
        i += 1
        heredocs: list[Heredoc] = []
        keyword = joined.split(None, 1)[0].upper() if joined else ""
        if keyword in _HEREDOC_CMDS or (keyword == "ONBUILD" and len(joined.split()) > 1
                                         and joined.split()[1].upper() in _HEREDOC_CMDS):
            for hm in _HEREDOC.finditer(joined):
                chomp, quote, name = hm.group(1) == "-", hm.group(2), hm.group(3)
                body: list[str] = []
                while i < n:
                    candidate = lines[i].lstrip("\t") if chomp else lines[i]
                    original.append(lines[i])
                    i += 1
                    if candidate == name:
                        break
                    body.append(candidate)
                else:
                    errors.append((start + 1, f"heredoc <<{name} is not terminated"))
                heredocs.append(Heredoc(name=name, content="\n".join(body) + ("\n" if body else ""),
                                        chomp=chomp, expand=not quote))
                end = i - 1
        if not joined:
            continue
        if not re.match(r"^[A-Za-z]+$", joined.split(None, 1)[0]):
            errors.append((start + 1, f"unknown instruction {joined.split(None, 1)[0]!r}"))
            continue
        instructions.append(_make_instruction(joined, start + 1, end + 1, "\n".join(original), heredocs))

    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for inst in instructions:
        if inst.cmd == "FROM":
            words = inst.value.split()
            base_raw = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stage = Stage(index=len(stages), base=_substitute(base_raw, global_args), base_raw=base_raw,
                          name=name.lower(), line=inst.line, platform=inst.flag("platform") or "")
            stages.append(stage)
        elif not stages:
            if inst.cmd == "ARG":
                for word in inst.args:
                    k, sep, v = word.partition("=")
                    global_args[k] = v if sep else None
            else:
                errors.append((inst.line, f"{inst.cmd} before the first FROM"))
        if stages:
            inst.stage = stages[-1].index
            stages[-1].instructions.append(inst)
    return Dockerfile(directives=directives, escape=escape, instructions=instructions, stages=stages,
                      global_args=global_args, errors=errors)


# --------------------------------------------------------------------------------------------------
# Shell analysis of RUN

@dataclass
class _Cmd:
    words: list[str]
    piped_to: list[str] | None = None  # the command this one pipes into


def run_script(inst: Instruction) -> str:
    """The shell text a RUN executes: exec-form words, the inline command and any heredoc bodies."""
    if inst.json:
        return " ".join(inst.args)
    text = inst.value
    for doc in inst.heredocs:
        text += "\n" + doc.content
    return text


_OPS = {"&&", "||", ";", "|", "&", "\n", ";;", "|&"}


def _commands(script: str) -> list[_Cmd]:
    """Split shell text into simple commands, remembering pipes. Good enough for linting: quoting
    is honoured, but subshells and functions are flattened into their commands."""
    lex = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|()")
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        tokens = list(lex)
    except ValueError:
        tokens = script.replace("\n", " ; ").split()
    cmds: list[_Cmd] = []
    current: list[str] = []
    pipe_from: _Cmd | None = None
    for tok in tokens:
        if tok in _OPS or tok in {"(", ")", "{", "}"}:
            if current:
                cmd = _Cmd(_strip_prefix(current))
                if pipe_from is not None:
                    pipe_from.piped_to = cmd.words
                cmds.append(cmd)
                pipe_from = cmd if tok in {"|", "|&"} else None
            current = []
            continue
        current.append(tok)
    if current:
        cmd = _Cmd(_strip_prefix(current))
        if pipe_from is not None:
            pipe_from.piped_to = cmd.words
        cmds.append(cmd)
    return [c for c in cmds if c.words]


def _strip_prefix(words: list[str]) -> list[str]:
    """Drop leading VAR=value assignments and wrappers (env, sudo handled separately)."""
    out = list(words)
    while out and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", out[0]):
        out.pop(0)
    return out


def _prog(words: list[str]) -> str:
    return os.path.basename(words[0]) if words else ""


def _unsudo(words: list[str]) -> list[str]:
    w = list(words)
    while w and _prog(w) in {"sudo", "env", "nice", "nohup", "exec", "command", "time"}:
        w.pop(0)
        while w and (w[0].startswith("-") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w[0])):
            w.pop(0)
    return w


def _pm_args(words: list[str], prog: str, subcmds: set[str]) -> list[str] | None:
    """If ``words`` runs ``prog`` with one of ``subcmds``, the words after the subcommand."""
    w = _unsudo(words)
    if not w or _prog(w) != prog:
        return None
    for idx, word in enumerate(w[1:], start=1):
        if word.startswith("-"):
            continue
        if word in subcmds:
            return w[1:idx] + w[idx + 1 :]
        return None
    return None


def _packages(args: list[str], takes_value: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    pkgs: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a.startswith("-"):
            if a in takes_value:
                skip = True
            continue
        pkgs.append(a)
    return pkgs


# --------------------------------------------------------------------------------------------------
# Rules

def _r(num: int, title: str, sev: Severity, desc: str, fix: str, cis: str = "") -> Rule:
    return Rule(id=f"HG-DF-{num:03d}", title=title, severity=sev, description=desc, remediation=fix, cis=cis,
                references=("https://docs.docker.com/reference/dockerfile/",))


L, M, H, C = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL
RULES: dict[str, Rule] = {r.id: r for r in [
    _r(1, "Image runs as root: no USER instruction", H,
       "The final stage never sets USER, so containers run as root unless the runtime overrides it; "
       "a process escape then starts with root privileges.",
       "Create an unprivileged user and add `USER <name or uid>` to the final stage.", "4.1"),
    _r(2, "Last USER is root", H,
       "The last USER instruction of the final stage switches to root, so the container runs as root.",
       "End the final stage with `USER` set to a non-root user.", "4.1"),
    _r(3, "Base image uses the 'latest' tag", M,
       "`latest` moves; builds are not reproducible and may silently pick up a different base.",
       "Pin the base image to a version tag, ideally also by digest.", "4.2"),
    _r(4, "Base image has no tag", M,
       "An untagged base image means `latest`, with the same reproducibility and trust problems.",
       "Pin the base image to a version tag, ideally also by digest.", "4.2"),
    _r(5, "ADD fetches a remote URL", M,
       "ADD with a URL downloads without checksum verification (unless --checksum is given) and "
       "hides a network dependency in the build.",
       "Download with curl/wget in a RUN, verify a checksum, or use `ADD --checksum=`.", "4.9"),
    _r(6, "ADD used where COPY suffices", L,
       "ADD has implicit behaviour (URL fetch, archive extraction); COPY states the intent.",
       "Use COPY for local files and directories.", "4.9"),
    _r(7, "ADD auto-extracts a local archive", L,
       "ADD silently unpacks tar archives, which can write unexpected paths into the image.",
       "Use COPY and unpack explicitly in a RUN where the contents can be checked.", "4.9"),
    _r(8, "Remote script piped into a shell", H,
       "`curl ... | sh` runs whatever the server returns, with no integrity check.",
       "Download to a file, verify its checksum or signature, then run it.", ""),
    _r(9, "apt-get install without --no-install-recommends", L,
       "Recommended packages enlarge the image and its attack surface.",
       "Add `--no-install-recommends` to apt-get install.", ""),
    _r(10, "apt lists not removed after install", L,
       "Package lists left in /var/lib/apt/lists bloat the layer and go stale.",
       "End the same RUN with `rm -rf /var/lib/apt/lists/*`.", ""),
    _r(11, "apt-get install without version pins", L,
       "Unpinned packages make builds non-reproducible.", "Pin versions: `apt-get install pkg=1.2.3-1`.", ""),
    _r(12, "Distribution upgrade inside the build", M,
       "`apt-get upgrade`/`dist-upgrade`, `yum update` and the like make the image depend on the day "
       "it was built and can break the base image's guarantees.",
       "Rebuild from an updated base image instead, or pin the packages you need.", ""),
    _r(13, "Package index update alone in a RUN", M,
       "An `update` in its own RUN is cached as a layer, so later installs may use stale indexes.",
       "Combine `apt-get update` with `apt-get install` in the same RUN.", "4.7"),
    _r(14, "sudo used in RUN", M,
       "sudo in a build is unnecessary (RUN already runs as the current USER) and its presence in the "
       "image enables privilege escalation.", "Switch USER around privileged steps instead of sudo.", ""),
    _r(15, "Secret in ENV", H,
       "ENV values are stored in the image config and visible to anyone who pulls the image.",
       "Pass secrets at run time, or at build time with `RUN --mount=type=secret`.", "4.10"),
    _r(16, "Secret in ARG", H,
       "Build arguments are recorded in the image history, so a secret passed with --build-arg leaks.",
       "Use `RUN --mount=type=secret` (BuildKit) for build-time secrets.", "4.10"),
    _r(17, "SSH port exposed", M,
       "Exposing port 22 suggests an SSH server in the container, which should be managed by the "
       "orchestrator instead (kubectl exec / docker exec).", "Remove the SSH server and `EXPOSE 22`.", ""),
    _r(18, "World-writable permissions set", M,
       "chmod 777 (or o+w) lets any user in the container modify the files.",
       "Grant only what is needed, e.g. 755 for directories and 644 for files, owned by the app user.", ""),
    _r(19, "No HEALTHCHECK", L,
       "Without HEALTHCHECK the engine cannot tell a hung container from a healthy one.",
       "Add a HEALTHCHECK instruction to the final stage.", "4.6"),
    _r(20, "Whole build context copied without .dockerignore", M,
       "`COPY . .` with no .dockerignore copies everything beside the Dockerfile, often including "
       ".git, credentials and local environment files.",
       "Add a .dockerignore, or copy only the files the image needs.", ""),
    _r(21, "Several CMD instructions in one stage", L,
       "Only the last CMD takes effect; the others are dead code that misleads readers.",
       "Keep one CMD per stage.", ""),
    _r(22, "Several ENTRYPOINT instructions in one stage", L,
       "Only the last ENTRYPOINT takes effect.", "Keep one ENTRYPOINT per stage.", ""),
    _r(23, "cd used in RUN instead of WORKDIR", L,
       "`cd` affects only that RUN; WORKDIR is explicit and persists.", "Use WORKDIR.", ""),
    _r(24, "Relative WORKDIR", L,
       "A relative WORKDIR depends on the previous WORKDIR and is easy to get wrong.",
       "Use an absolute path in WORKDIR.", ""),
    _r(25, "MAINTAINER is deprecated", L,
       "MAINTAINER was deprecated in favour of labels.",
       "Use `LABEL org.opencontainers.image.authors=...`.", ""),
    _r(26, "apk add without --no-cache", L,
       "The apk cache stays in the layer.", "Use `apk add --no-cache`.", ""),
    _r(27, "apk add without version pins", L,
       "Unpinned packages make builds non-reproducible.", "Pin versions: `apk add pkg=1.2.3-r0`.", ""),
    _r(28, "pip install without --no-cache-dir", L,
       "pip's download cache stays in the layer.", "Use `pip install --no-cache-dir`.", ""),
    _r(29, "pip install without version pins", L,
       "Unpinned packages make builds non-reproducible and open the door to dependency confusion.",
       "Pin versions (`pkg==1.2.3`) or install from a hashed requirements file.", ""),
    _r(30, "npm install of unpinned packages", L,
       "Installing named packages without versions pulls whatever is newest.",
       "Pin versions (`pkg@1.2.3`) or use `npm ci` with a lockfile.", ""),
    _r(31, "yum/dnf install without clean", L,
       "The yum/dnf cache stays in the layer.", "End the same RUN with `yum clean all` / `dnf clean all`.", ""),
    _r(32, "zypper install without clean", L,
       "The zypper cache stays in the layer.", "End the same RUN with `zypper clean`.", ""),
    _r(33, "zypper install without non-interactive flag", L,
       "zypper without -n/--non-interactive can hang or fail the build waiting for input.",
       "Use `zypper -n install` (or `--non-interactive`).", ""),
    _r(34, "Credential on a RUN command line", H,
       "Passwords and tokens given on the command line end up in the image history.",
       "Mount the secret with `RUN --mount=type=secret,id=...` and read it from /run/secrets.", "4.10"),
    _r(35, "Shell form ENTRYPOINT or CMD", L,
       "Shell form runs the program under /bin/sh -c, which does not forward signals, so the "
       "container does not stop gracefully.", "Use the exec (JSON array) form.", ""),
    _r(36, "apt used instead of apt-get", L,
       "apt's command line interface is not stable for scripts.", "Use apt-get or apt-cache.", ""),
    _r(37, "Base image not pinned by digest", L,
       "A tag can be moved to a different image; only a digest identifies the content.",
       "Reference the base as `name:tag@sha256:...`.", "4.2"),
    _r(38, "Duplicate stage name", M,
       "Two stages with the same name make `COPY --from` and `--target` ambiguous.",
       "Give every stage a unique name.", ""),
    _r(39, "Dockerfile syntax problem", M,
       "The parser found a construct the builder would reject or misread.",
       "Fix the reported line.", ""),
    _r(40, "yum install without -y", L,
       "yum without -y waits for confirmation and fails in a non-interactive build.",
       "Use `yum install -y`.", ""),
    _r(41, "yum/dnf install without version pins", L,
       "Unpinned packages make builds non-reproducible: each build installs whatever the repository "
       "serves that day.", "Pin versions: `dnf install -y pkg-1.2.3` (name-version[-release]).", ""),
    _r(42, "zypper install without version pins", L,
       "Unpinned packages make builds non-reproducible: each build installs whatever the repository "
       "serves that day.", "Pin versions: `zypper -n install pkg=1.2.3` (or `pkg>=1.2`).", ""),
]}
register(*RULES.values())


_SECRET_NAME = re.compile(
    r"(?i)(passw(or)?d|passwd|\bpwd\b|_pwd$|^pwd_|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|"
    r"credential|client[_-]?secret|auth[_-]?key|session[_-]?key|encryption[_-]?key)")
# Names that carry a reference to a secret rather than the secret itself.
_SECRET_NAME_OK = re.compile(r"(?i)(_file|_path|_dir|_location|_url|_name|_id|_env|_version|_type|_length|_size)$")
_SECRET_VALUE = re.compile(
    r"(AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20}|"
    r"xox[baprs]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{16,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|"
    r"npm_[A-Za-z0-9]{36}|pypi-AgEI[A-Za-z0-9_-]{20,}")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tar\.lz|gz|bz2|xz)$", re.I)
_URL = re.compile(r"^(https?|ftp)://|^git@|\.git(#.*)?$", re.I)


def _mask(value: str) -> str:
    return value[:2] + "*" * max(0, min(len(value), 12) - 2) if value else ""


def _key_values(inst: Instruction) -> list[tuple[str, str]]:
    """Pairs from ENV/ARG in either syntax: `KEY=value ...` or the legacy `ENV KEY value`."""
    words = inst.args
    if not words:
        return []
    if inst.cmd == "ENV" and "=" not in words[0]:
        return [(words[0], inst.value.split(None, 1)[1] if len(inst.value.split(None, 1)) > 1 else "")]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        out.append((k, v if sep else ""))
    return out


def _image_ref(ref: str) -> tuple[str, str, str]:
    """(name, tag, digest) of an image reference; the tag is '' when absent."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        tag = last.rsplit(":", 1)[1]
        name = name[: len(name) - len(tag) - 1]
    return name, tag, digest


class _Ctx:
    def __init__(self, df: Dockerfile, path: str, context_dir: str | None) -> None:
        self.df = df
        self.path = path
        self.context_dir = context_dir
        self.findings: list[Finding] = []
        self.stage_names = {s.name for s in df.stages if s.name}

    def add(self, num: int, line: int, message: str = "", **details: object) -> None:
        rule = RULES[f"HG-DF-{num:03d}"]
        d: dict[str, object] = {"cis": rule.cis} if rule.cis else {}
        if message:
            d["message"] = message
        d.update(details)
        self.findings.append(Finding(
            kind="misconfiguration", rule_id=rule.id, severity=rule.severity, title=rule.title,
            target=self.path, location=Location(path=self.path, line=line), fix=rule.remediation, details=d))


def _all_instructions(df: Dockerfile) -> Iterator[Instruction]:
    for inst in df.instructions:
        yield inst
        if inst.sub is not None:
            yield inst.sub


def _chk_user(ctx: _Ctx) -> None:
    if not ctx.df.stages:
        return
    by_name = {s.name: s for s in ctx.df.stages if s.name}

    def last_user(stage: Stage, seen: set[int]) -> tuple[str | None, int]:
        for inst in reversed(stage.instructions):
            if inst.cmd == "USER":
                return inst.value.split(":")[0].strip(), inst.line
        parent = by_name.get(stage.base.lower())
        if parent is not None and parent.index not in seen and parent.index < stage.index:
            return last_user(parent, seen | {stage.index})
        return None, stage.line

    final = ctx.df.stages[-1]
    user, line = last_user(final, set())
    if user is None:
        ctx.add(1, final.line)
    elif user in {"root", "0"}:
        ctx.add(2, line)


def _chk_base(ctx: _Ctx) -> None:
    seen: dict[str, int] = {}
    for st in ctx.df.stages:
        if st.name:
            if st.name in seen:
                ctx.add(38, st.line, f"stage name {st.name!r} already used on line {seen[st.name]}")
            seen[st.name] = st.line
        base = st.base
        if not base or base.lower() == "scratch" or base.lower() in {s.name for s in ctx.df.stages[: st.index]}:
            continue
        if "$" in base:  # an ARG without a default; the tag is decided at build time
            continue
        _name, tag, digest = _image_ref(base)
        if digest:
            continue
        if tag == "latest":
            ctx.add(3, st.line, f"base image {base}")
        elif not tag:
            ctx.add(4, st.line, f"base image {base}")
        else:
            ctx.add(37, st.line, f"base image {base}")


def _chk_add(ctx: _Ctx) -> None:
    for inst in _all_instructions(ctx.df):
        if inst.cmd != "ADD":
            continue
        srcs = (inst.args if inst.json else _shell_words(inst.value))[:-1]
        if inst.heredocs:
            continue
        if any(_URL.search(s) for s in srcs):
            if inst.flag("checksum") is None:
                ctx.add(5, inst.line)
        elif any(_ARCHIVE.search(s) for s in srcs):
            ctx.add(7, inst.line)
        else:
            ctx.add(6, inst.line)


_DOWNLOADERS = {"curl", "wget", "fetch"}
_SHELLS = {"sh", "bash", "zsh", "ash", "dash", "ksh", "python", "python3", "perl", "ruby", "node"}
_CRED_ARG = re.compile(
    r"(?i)(--password[= ]\S|--passwd[= ]\S|-p\s*\S+\s+.*login|--token[= ]\S|authorization:\s*(bearer|basic|token)\s+\S|"
    r"https?://[^/\s:@]+:[^@\s/]+@|--(api-?key|secret)[= ]\S)")


# yum/dnf options that take their value as the next word (the =value forms are one word).
_RPM_OPTS_WITH_VALUE = {"-c", "--config", "--installroot", "--releasever", "--enablerepo", "--disablerepo",
                        "--repo", "--repoid", "--setopt", "-x", "--exclude", "--downloaddir", "--destdir",
                        "--forcearch", "--nodocs-path", "--color"}


def _rpm_pinned(pkg: str) -> bool:
    """An RPM package spec that names a version: name-version[-release][.arch] (a hyphen followed by
    a digit; names like python3-pip have hyphens too, but not before a digit), an rpm file, a
    path, a group (@...), a capability with a comparison, or a variable the build fills in."""
    return bool(re.search(r"-\d|\.rpm$|[=<>*$]", pkg)) or pkg.startswith(("@", "/", "."))


def _world_writable(mode: str) -> bool:
    if re.fullmatch(r"[0-7]{1,5}", mode):
        return int(mode[-1]) & 2 != 0
    # Symbolic: a clause that gives 'w' to others, to all (a), or to nobody-named (which means all).
    return any(re.fullmatch(r"[ugo]*[ao][ugoa]*[+=][rwxXst]*w[rwxXst]*|[+=][rwxXst]*w[rwxXst]*", clause)
               for clause in mode.split(","))


def _chk_run(ctx: _Ctx) -> None:
    for inst in _all_instructions(ctx.df):
        if inst.cmd != "RUN":
            continue
        script = run_script(inst)
        cmds = _commands(script)
        progs = [_prog(_unsudo(c.words)) for c in cmds]
        lowered = script.lower()
        uses_secret_mount = any("type=secret" in m for m in inst.flags.get("mount", []))
        apt_clean = "/var/lib/apt/lists" in script and re.search(r"\brm\b", script) is not None
        apt_cache_mount = any("/var/lib/apt" in m or "/var/cache/apt" in m for m in inst.flags.get("mount", []))
        for c, prog in zip(cmds, progs, strict=True):
            w = _unsudo(c.words)
            if c.words and _prog(c.words) == "sudo":
                ctx.add(14, inst.line)
            if prog in _DOWNLOADERS and c.piped_to and _prog(_unsudo(c.piped_to)) in _SHELLS:
                ctx.add(8, inst.line, f"{prog} piped into {_prog(_unsudo(c.piped_to))}")
            if prog == "cd":
                ctx.add(23, inst.line)
            if prog == "apt":
                ctx.add(36, inst.line)
            if prog in {"chmod"}:
                modes = [a for a in w[1:] if not a.startswith("-") or re.fullmatch(r"-[rwxXst]+", a)]
                if modes and _world_writable(modes[0]):
                    ctx.add(18, inst.line, f"chmod {modes[0]}")
            for tool in ("apt-get", "apt"):
                args = _pm_args(w, tool, {"install"})
                if args is not None:
                    if "--no-install-recommends" not in args and not any("no-install-recommends" in a for a in args):
                        ctx.add(9, inst.line)
                    if not apt_clean and not apt_cache_mount:
                        ctx.add(10, inst.line)
                    pkgs = [p for p in _packages(args, {"-o", "-t", "--target-release"}) if not p.endswith(".deb")]
                    unpinned = [p for p in pkgs if "=" not in p and "$" not in p]
                    if unpinned:
                        ctx.add(11, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
                if _pm_args(w, tool, {"upgrade", "dist-upgrade", "full-upgrade"}) is not None:
                    ctx.add(12, inst.line, f"{tool} upgrade")
            for tool, subs in (("yum", {"update", "upgrade"}), ("dnf", {"upgrade", "update", "distro-sync"}),
                               ("microdnf", {"upgrade", "update"}), ("apk", {"upgrade"}),
                               ("zypper", {"update", "up", "dist-upgrade", "dup"})):
                args = _pm_args(w, tool, subs)
                if args is not None and not (tool in {"yum", "dnf"} and any("security" in a for a in args)):
                    ctx.add(12, inst.line, f"{tool} {'/'.join(sorted(subs))}")
            if _pm_args(w, "apt-get", {"update"}) is not None and not any(
                    _pm_args(_unsudo(o.words), t, {"install"}) is not None for o in cmds for t in ("apt-get", "apt")):
                ctx.add(13, inst.line)
            args = _pm_args(w, "apk", {"add"})
            if args is not None:
                cache_mount = any("/var/cache/apk" in m for m in inst.flags.get("mount", []))
                if "--no-cache" not in args and not cache_mount and "/var/cache/apk" not in script:
                    ctx.add(26, inst.line)
                pkgs = _packages(args, {"-X", "--repository", "-t", "--virtual", "--root", "-p"})
                unpinned = [p for p in pkgs if "=" not in p and "~" not in p and not p.startswith(".")
                            and "$" not in p and not p.endswith(".apk")]
                if unpinned:
                    ctx.add(27, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
            pip_args = None
            if prog in {"pip", "pip3"} or re.fullmatch(r"pip3?(\.\d+)?", prog):
                pip_args = _pm_args(w, prog, {"install"})
            elif re.fullmatch(r"python[23]?(\.\d+)?", prog) and len(w) > 2 and w[1] == "-m" and w[2] in {"pip", "pip3"}:
                pip_args = _pm_args(w[2:], w[2], {"install"})
            if pip_args is not None:
                if "--no-cache-dir" not in pip_args and "PIP_NO_CACHE_DIR" not in script and not any(
                        "/root/.cache" in m for m in inst.flags.get("mount", [])):
                    ctx.add(28, inst.line)
                if not any(a in {"-r", "--requirement", "-e", "--editable", "-c", "--constraint"}
                           or a.startswith(("-r", "--requirement=")) for a in pip_args):
                    pkgs = _packages(pip_args, {"-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                                                "-t", "--target", "--prefix", "--root", "--trusted-host"})
                    unpinned = [p for p in pkgs if not re.search(r"(==|===|@|\.whl$|\.tar\.gz$|\.zip$|^\.|/)", p)
                                and "$" not in p]
                    if unpinned:
                        ctx.add(29, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
            npm_args = _pm_args(w, "npm", {"install", "i", "add"})
            if npm_args is not None:
                pkgs = _packages(npm_args, {"--prefix", "--registry"})
                unpinned = [p for p in pkgs if not re.search(r"^@?[^@]+@.+", p) and not p.startswith((".", "/"))
                            and "$" not in p and "://" not in p]
                if unpinned:
                    ctx.add(30, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
            for tool in ("yum", "dnf", "microdnf"):
                args = _pm_args(w, tool, {"install", "groupinstall", "localinstall"})
                if args is not None:
                    if f"{tool} clean" not in lowered and "/var/cache/yum" not in script \
                            and "/var/cache/dnf" not in script and not any(
                                "/var/cache/" in m for m in inst.flags.get("mount", [])):
                        ctx.add(31, inst.line)
                    if tool == "yum" and not any(a in {"-y", "--assumeyes"} or re.fullmatch(r"-[a-zA-Z]*y[a-zA-Z]*", a)
                                                 for a in args):
                        ctx.add(40, inst.line)
                    unpinned = [p for p in _packages(args, _RPM_OPTS_WITH_VALUE) if not _rpm_pinned(p)]
                    if unpinned and "groupinstall" not in w:  # groups have no versions
                        ctx.add(41, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
            args = _pm_args(w, "zypper", {"install", "in"})
            if args is not None:
                if "zypper clean" not in lowered and "zypper cc" not in lowered:
                    ctx.add(32, inst.line)
                if not any(a in {"-n", "--non-interactive", "-y", "--no-confirm"} for a in args):
                    ctx.add(33, inst.line)
                pkgs = _packages(args, {"-r", "--repo", "--from", "-t", "--type", "--root", "-R"})
                unpinned = [p for p in pkgs if not re.search(r"[=<>]|\.rpm$|\$", p)]
                if unpinned:
                    ctx.add(42, inst.line, "unpinned: " + ", ".join(unpinned[:10]))
        if not uses_secret_mount and _CRED_ARG.search(script):
            ctx.add(34, inst.line)


def _chk_env_arg(ctx: _Ctx) -> None:
    for inst in _all_instructions(ctx.df):
        if inst.cmd not in {"ENV", "ARG"}:
            continue
        for key, value in _key_values(inst):
            val = value.strip("\"'")
            if _SECRET_VALUE.search(val):
                ctx.add(15 if inst.cmd == "ENV" else 16, inst.line, f"{key} holds a credential", evidence=_mask(val))
                continue
            if not _SECRET_NAME.search(key) or _SECRET_NAME_OK.search(key):
                continue
            if inst.cmd == "ENV":
                # A value that only references another variable or a file is not itself the secret.
                if not val or val.startswith("$") or val.startswith("/"):
                    continue
                ctx.add(15, inst.line, f"{key} looks like a secret", evidence=_mask(val))
            else:
                ctx.add(16, inst.line, f"build argument {key} looks like a secret")


def _chk_misc(ctx: _Ctx) -> None:
    for inst in _all_instructions(ctx.df):
        if inst.cmd == "EXPOSE":
            for port in inst.args:
                if port.split("/")[0] == "22":
                    ctx.add(17, inst.line)
        elif inst.cmd == "MAINTAINER":
            ctx.add(25, inst.line)
        elif inst.cmd == "WORKDIR":
            path = inst.value.strip().strip("\"'")
            if path and not path.startswith(("/", "$")) and not re.match(r"^[A-Za-z]:[\\/]", path):
                ctx.add(24, inst.line, f"WORKDIR {path}")
        elif inst.cmd == "COPY":
            if inst.flag("from") is not None or inst.heredocs:
                continue
            words = inst.args if inst.json else _shell_words(inst.value)
            srcs = words[:-1]
            if any(s in {".", "./", "*", "./*"} for s in srcs) and ctx.context_dir is not None \
                    and not os.path.exists(os.path.join(ctx.context_dir, ".dockerignore")) \
                    and not os.path.exists(ctx.path + ".dockerignore"):
                ctx.add(20, inst.line)
        elif inst.cmd in {"ENTRYPOINT", "CMD"} and not inst.json and inst.value:
            ctx.add(35, inst.line)
    for st in ctx.df.stages:
        for cmd, num in (("CMD", 21), ("ENTRYPOINT", 22)):
            found = [i for i in st.instructions if i.cmd == cmd]
            if len(found) > 1:
                ctx.add(num, found[-1].line, f"{len(found)} {cmd} instructions in stage {st.index}")
    if ctx.df.stages:
        by_name = {s.name: s for s in ctx.df.stages if s.name}
        st: Stage | None = ctx.df.stages[-1]
        seen: set[int] = set()
        has_hc = False
        while st is not None and st.index not in seen:
            seen.add(st.index)
            if any(i.cmd == "HEALTHCHECK" for i in st.instructions):
                has_hc = True
                break
            st = by_name.get(st.base.lower())
        if not has_hc:
            ctx.add(19, ctx.df.stages[-1].line)
    for line, msg in ctx.df.errors:
        ctx.add(39, line, msg)


_CHECKS: list[Callable[[_Ctx], None]] = [_chk_user, _chk_base, _chk_add, _chk_run, _chk_env_arg, _chk_misc]


def check_dockerfile(data: bytes | str, path: str = "Dockerfile", context_dir: str | None = None) -> list[Finding]:
    """Run every HG-DF check. ``context_dir`` is the build context (the Dockerfile's directory by
    default in the CLI); without it the .dockerignore check is skipped, since it cannot be judged."""
    df = parse_dockerfile(data)
    ctx = _Ctx(df, path, context_dir)
    for check in _CHECKS:
        check(ctx)
    ctx.findings.sort(key=lambda f: (f.location.line if f.location else 0, f.rule_id))
    return ctx.findings


def check_dockerfile_path(path: str) -> list[Finding]:
    """Read and check one Dockerfile; its directory is taken as the build context."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_DOCKERFILE_BYTES + 1)
    return check_dockerfile(data, path, os.path.dirname(os.path.abspath(path)))


def is_dockerfile_name(name: str) -> bool:
    """File names `hullguard config DIR` should treat as Dockerfiles."""
    base = os.path.basename(name).lower()
    return (base in {"dockerfile", "containerfile"} or base.startswith(("dockerfile.", "containerfile."))
            or base.endswith((".dockerfile", ".containerfile")))
