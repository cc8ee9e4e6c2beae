"""Dockerfile parser (per the Dockerfile reference) and every HG-DF check, positive and negative."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hullguard.detect.misconfig import all_rules, get_rule
from hullguard.detect.misconfig.dockerfile import (
    RULES,
    DockerfileError,
    check_dockerfile,
    check_dockerfile_path,
    parse_dockerfile,
)
from hullguard.model import Severity


def df(text: str):
    return parse_dockerfile(textwrap.dedent(text).lstrip("\n"))


# --- parser ---------------------------------------------------------------------------------------

def test_directives_only_at_top():
    d = df("""
        # syntax=docker/dockerfile:1
        # escape=`
        FROM alpine
        # escape=\\
        RUN echo hi
    """)
    assert d.directives == {"syntax": "docker/dockerfile:1", "escape": "`"}
    assert d.escape == "`"


def test_directive_after_comment_is_a_comment():
    d = df("""
        # a comment
        # escape=`
        FROM alpine
    """)
    assert d.directives == {}
    assert d.escape == "\\"


def test_backslash_continuation_and_comment_inside():
    d = df("""
        FROM debian:12
        RUN apt-get update && \\
            # explain the next step
            apt-get install -y \\

            curl
        USER app
    """)
    run = d.instructions[1]
    assert run.cmd == "RUN"
    assert run.line == 2 and run.end_line == 6
    assert run.value == "apt-get update && apt-get install -y curl"
    assert d.instructions[2].line == 7


def test_backtick_escape_for_windows_paths():
    d = df("""
        # escape=`
        FROM mcr.microsoft.com/windows/servercore:ltsc2022
        COPY testfile.txt c:\\
        RUN dir c:\\ `
            && echo done
    """)
    copy, run = d.instructions[1], d.instructions[2]
    assert copy.args == ["testfile.txt", "c:\\"] or copy.value == "testfile.txt c:\\"
    assert run.value == "dir c:\\ && echo done"


def test_heredoc_single_and_chomp():
    d = df("""
        FROM alpine:3.19
        RUN <<EOF
        echo one
        echo two
        EOF
        RUN <<-EOT
        \techo tabbed
        \tEOT
        USER 1000
    """)
    r1, r2 = d.instructions[1], d.instructions[2]
    assert r1.heredocs[0].name == "EOF" and r1.heredocs[0].content == "echo one\necho two\n"
    assert r1.line == 2 and r1.end_line == 5
    assert r2.heredocs[0].chomp and r2.heredocs[0].content == "echo tabbed\n"
    assert d.instructions[3].cmd == "USER" and d.instructions[3].line == 9


def test_multiple_heredocs_and_quoted_delimiter():
    d = df("""
        FROM alpine:3.19
        COPY <<FILE1 <<"FILE2" /dest/
        one $HOME
        FILE1
        two $HOME
        FILE2
        CMD ["x"]
    """)
    copy = d.instructions[1]
    assert [h.name for h in copy.heredocs] == ["FILE1", "FILE2"]
    assert copy.heredocs[0].expand and not copy.heredocs[1].expand
    assert copy.heredocs[1].content == "two $HOME\n"
    assert d.instructions[2].cmd == "CMD"


def test_exec_vs_shell_form():
    d = df("""
        FROM alpine:3.19
        CMD ["echo", "hi there"]
        ENTRYPOINT echo hi
        RUN [ "a" ]
        RUN [not json
    """)
    cmd, ep, r1, r2 = d.instructions[1:]
    assert cmd.json and cmd.args == ["echo", "hi there"]
    assert not ep.json
    assert r1.json and r1.args == ["a"]
    assert not r2.json


def test_flags_and_stages_and_global_args():
    d = df("""
        ARG VERSION=3.19
        ARG REG
        FROM --platform=$BUILDPLATFORM alpine:${VERSION} AS build
        RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok echo hi
        COPY --chown=app:app --from=build /a /b
        from build as final
    """)
    assert d.global_args == {"VERSION": "3.19", "REG": None}
    assert [s.name for s in d.stages] == ["build", "final"]
    assert d.stages[0].base == "alpine:3.19" and d.stages[0].platform == "$BUILDPLATFORM"
    run = d.instructions[3]
    assert run.flags["mount"] == ["type=cache,target=/root/.cache", "type=secret,id=tok"]
    assert run.value == "echo hi"
    copy = d.instructions[4]
    assert copy.flag("chown") == "app:app" and copy.flag("from") == "build"
    assert d.stages[1].base == "build"
    assert [i.stage for i in d.instructions] == [-1, -1, 0, 0, 0, 1]


def test_onbuild_trigger_is_parsed():
    d = df("""
        FROM alpine:3.19
        ONBUILD ADD https://example.com/x /x
    """)
    assert d.instructions[1].sub is not None and d.instructions[1].sub.cmd == "ADD"


def test_binary_input_refused():
    with pytest.raises(DockerfileError):
        parse_dockerfile(b"\x7fELF\x00\x00\x00")


def test_unterminated_heredoc_reported():
    d = df("""
        FROM alpine:3.19
        RUN <<EOF
        echo never closed
    """)
    assert any("not terminated" in msg for _, msg in d.errors)


# --- checks ----------------------------------------------------------------------------------------

GOOD_TAIL = "USER 1000\nHEALTHCHECK CMD true\n"


def ids(text: str, context_dir: str | None = None) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for f in check_dockerfile(textwrap.dedent(text).lstrip("\n"), "Dockerfile", context_dir):
        out.setdefault(f.rule_id, []).append(f.location.line if f.location else 0)
    return out


# (rule, Dockerfile that triggers it, Dockerfile that does not)
CASES = [
    ("HG-DF-001", "FROM alpine:3.19\nHEALTHCHECK CMD true\n", "FROM alpine:3.19\n" + GOOD_TAIL),
    ("HG-DF-001", "FROM alpine:3.19 AS b\nUSER app\nFROM debian:12\nHEALTHCHECK CMD true\n",
     "FROM alpine:3.19 AS b\nUSER app\nFROM b\nHEALTHCHECK CMD true\n"),
    ("HG-DF-002", "FROM alpine:3.19\nUSER app\nUSER root\nHEALTHCHECK CMD true\n",
     "FROM alpine:3.19\nUSER root\nRUN x\nUSER app\nHEALTHCHECK CMD true\n"),
    ("HG-DF-002", "FROM alpine:3.19\nUSER 0:0\nHEALTHCHECK CMD true\n", "FROM alpine:3.19\nUSER 10001:0\n"),
    ("HG-DF-003", "FROM alpine:latest\n" + GOOD_TAIL, "FROM alpine:3.19\n" + GOOD_TAIL),
    ("HG-DF-003", "ARG B=node:latest\nFROM $B\n" + GOOD_TAIL, "ARG B=node:20\nFROM $B\n" + GOOD_TAIL),
    ("HG-DF-004", "FROM alpine\n" + GOOD_TAIL, "FROM scratch\n" + GOOD_TAIL),
    ("HG-DF-004", "FROM localhost:5000/app\n" + GOOD_TAIL, "FROM localhost:5000/app:1\n" + GOOD_TAIL),
    ("HG-DF-005", "FROM a:1\nADD https://x.io/f.bin /f\n" + GOOD_TAIL,
     "FROM a:1\nADD --checksum=sha256:abc https://x.io/f.bin /f\n" + GOOD_TAIL),
    ("HG-DF-006", "FROM a:1\nADD app.py /app/\n" + GOOD_TAIL, "FROM a:1\nCOPY app.py /app/\n" + GOOD_TAIL),
    ("HG-DF-007", "FROM a:1\nADD rootfs.tar.gz /\n" + GOOD_TAIL, "FROM a:1\nCOPY rootfs.tar.gz /\n" + GOOD_TAIL),
    ("HG-DF-008", "FROM a:1\nRUN curl -fsSL https://get.x.io | sh\n" + GOOD_TAIL,
     "FROM a:1\nRUN curl -fsSLo i.sh https://get.x.io && sha256sum -c s && sh i.sh\n" + GOOD_TAIL),
    ("HG-DF-008", "FROM a:1\nRUN wget -qO- https://x | sudo bash -s --\n" + GOOD_TAIL,
     "FROM a:1\nRUN curl https://x | tar xz\n" + GOOD_TAIL),
    ("HG-DF-009", "FROM d:12\nRUN apt-get update && apt-get install -y curl=7 && rm -rf /var/lib/apt/lists/*\n"
     + GOOD_TAIL, "FROM d:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl=7 "
     "&& rm -rf /var/lib/apt/lists/*\n" + GOOD_TAIL),
    ("HG-DF-010", "FROM d:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl=7\n"
     + GOOD_TAIL, "FROM d:12\nRUN --mount=type=cache,target=/var/lib/apt apt-get update && "
     "apt-get install -y --no-install-recommends curl=7\n" + GOOD_TAIL),
    ("HG-DF-011", "FROM d:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl "
     "&& rm -rf /var/lib/apt/lists/*\n" + GOOD_TAIL,
     "FROM d:12\nRUN apt-get update && apt-get install -y --no-install-recommends curl=7.88 "
     "&& rm -rf /var/lib/apt/lists/*\n" + GOOD_TAIL),
    ("HG-DF-012", "FROM d:12\nRUN apt-get update && apt-get -y dist-upgrade\n" + GOOD_TAIL,
     "FROM d:12\nRUN echo upgrade\n" + GOOD_TAIL),
    ("HG-DF-012", "FROM f:39\nRUN dnf -y upgrade\n" + GOOD_TAIL, "FROM f:39\nRUN dnf -y upgrade --security\n"
     + GOOD_TAIL),
    ("HG-DF-013", "FROM d:12\nRUN apt-get update\n" + GOOD_TAIL,
     "FROM d:12\nRUN apt-get update && apt-get install -y --no-install-recommends x=1 && rm -rf "
     "/var/lib/apt/lists/*\n" + GOOD_TAIL),
    ("HG-DF-014", "FROM a:1\nRUN sudo make install\n" + GOOD_TAIL, "FROM a:1\nRUN make install\n" + GOOD_TAIL),
    ("HG-DF-015", "FROM a:1\nENV DB_PASSWORD=hunter2\n" + GOOD_TAIL,
     "FROM a:1\nENV DB_PASSWORD_FILE=/run/secrets/db\n" + GOOD_TAIL),
    ("HG-DF-015", "FROM a:1\nENV AWS_KEY AKIAABCDEFGHIJKLMNOP\n" + GOOD_TAIL, "FROM a:1\nENV TOKEN=$TOKEN\n"
     + GOOD_TAIL),
    ("HG-DF-016", "FROM a:1\nARG NPM_TOKEN\n" + GOOD_TAIL, "FROM a:1\nARG NODE_VERSION=20\n" + GOOD_TAIL),
    ("HG-DF-017", "FROM a:1\nEXPOSE 80 22/tcp\n" + GOOD_TAIL, "FROM a:1\nEXPOSE 80 2222\n" + GOOD_TAIL),
    ("HG-DF-018", "FROM a:1\nRUN chmod -R 777 /data\n" + GOOD_TAIL, "FROM a:1\nRUN chmod 755 /data\n" + GOOD_TAIL),
    ("HG-DF-018", "FROM a:1\nRUN chmod o+w /data\n" + GOOD_TAIL, "FROM a:1\nRUN chmod u+w,o-w /data\n" + GOOD_TAIL),
    ("HG-DF-019", "FROM a:1\nUSER 1\n", "FROM a:1\nUSER 1\nHEALTHCHECK --interval=5s CMD curl -f localhost\n"),
    ("HG-DF-021", "FROM a:1\nCMD a\nCMD b\n" + GOOD_TAIL, "FROM a:1\nCMD a\nFROM a:1\nCMD b\n" + GOOD_TAIL),
    ("HG-DF-022", "FROM a:1\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n" + GOOD_TAIL,
     "FROM a:1\nENTRYPOINT [\"a\"]\n" + GOOD_TAIL),
    ("HG-DF-023", "FROM a:1\nRUN cd /src && make\n" + GOOD_TAIL, "FROM a:1\nWORKDIR /src\nRUN make\n" + GOOD_TAIL),
    ("HG-DF-024", "FROM a:1\nWORKDIR app\n" + GOOD_TAIL, "FROM a:1\nWORKDIR /app\nWORKDIR $HOME\n" + GOOD_TAIL),
    ("HG-DF-025", "FROM a:1\nMAINTAINER me@x\n" + GOOD_TAIL, "FROM a:1\nLABEL maintainer=me\n" + GOOD_TAIL),
    ("HG-DF-026", "FROM a:1\nRUN apk add curl=8.5.0-r0\n" + GOOD_TAIL,
     "FROM a:1\nRUN apk add --no-cache curl=8.5.0-r0\n" + GOOD_TAIL),
    ("HG-DF-027", "FROM a:1\nRUN apk add --no-cache curl\n" + GOOD_TAIL,
     "FROM a:1\nRUN apk add --no-cache --virtual .deps curl~8.5\n" + GOOD_TAIL),
    ("HG-DF-028", "FROM p:3\nRUN pip install flask==3.0\n" + GOOD_TAIL,
     "FROM p:3\nRUN pip install --no-cache-dir flask==3.0\n" + GOOD_TAIL),
    ("HG-DF-029", "FROM p:3\nRUN python3 -m pip install --no-cache-dir flask\n" + GOOD_TAIL,
     "FROM p:3\nRUN pip install --no-cache-dir -r requirements.txt\n" + GOOD_TAIL),
    ("HG-DF-030", "FROM n:20\nRUN npm install -g typescript\n" + GOOD_TAIL,
     "FROM n:20\nRUN npm install -g typescript@5.4.2 && npm ci\n" + GOOD_TAIL),
    ("HG-DF-031", "FROM r:9\nRUN yum install -y httpd\n" + GOOD_TAIL,
     "FROM r:9\nRUN yum install -y httpd && yum clean all\n" + GOOD_TAIL),
    ("HG-DF-032", "FROM s:15\nRUN zypper -n install curl\n" + GOOD_TAIL,
     "FROM s:15\nRUN zypper -n install curl && zypper clean -a\n" + GOOD_TAIL),
    ("HG-DF-033", "FROM s:15\nRUN zypper install curl && zypper clean\n" + GOOD_TAIL,
     "FROM s:15\nRUN zypper install -n curl && zypper clean\n" + GOOD_TAIL),
    ("HG-DF-034", "FROM a:1\nRUN curl -H 'Authorization: Bearer abc123' https://x/f -o f\n" + GOOD_TAIL,
     "FROM a:1\nRUN --mount=type=secret,id=tok curl -H \"Authorization: Bearer $(cat /run/secrets/tok)\" "
     "https://x/f -o f\n" + GOOD_TAIL),
    ("HG-DF-035", "FROM a:1\nENTRYPOINT /app/run\n" + GOOD_TAIL, "FROM a:1\nENTRYPOINT [\"/app/run\"]\n" + GOOD_TAIL),
    ("HG-DF-035", "FROM a:1\nCMD python app.py\n" + GOOD_TAIL, "FROM a:1\nCMD [\"python\", \"app.py\"]\n" + GOOD_TAIL),
    ("HG-DF-036", "FROM d:12\nRUN apt install -y x\n" + GOOD_TAIL, "FROM d:12\nRUN apt-cache policy x\n" + GOOD_TAIL),
    ("HG-DF-037", "FROM alpine:3.19\n" + GOOD_TAIL, "FROM alpine:3.19@sha256:" + "a" * 64 + "\n" + GOOD_TAIL),
    ("HG-DF-038", "FROM a:1 AS x\nFROM b:1 AS x\n" + GOOD_TAIL, "FROM a:1 AS x\nFROM b:1 AS y\n" + GOOD_TAIL),
    ("HG-DF-039", "FROM a:1\n+++ nonsense\n" + GOOD_TAIL, "FROM a:1\n" + GOOD_TAIL),
    ("HG-DF-040", "FROM r:9\nRUN yum install httpd && yum clean all\n" + GOOD_TAIL,
     "FROM r:9\nRUN yum -y install httpd && yum clean all\n" + GOOD_TAIL),
    ("HG-DF-041", "FROM r:9\nRUN yum install -y python3-pip && yum clean all\n" + GOOD_TAIL,
     "FROM r:9\nRUN yum install -y python3-pip-21.3.1-1.el9 && yum clean all\n" + GOOD_TAIL),
    ("HG-DF-041", "FROM f:39\nRUN dnf install -y --enablerepo crb httpd-2.4.57 git && dnf clean all\n" + GOOD_TAIL,
     "FROM f:39\nRUN dnf install -y --enablerepo crb httpd-2.4.57 ./local.rpm @dev && dnf clean all\n"
     + GOOD_TAIL),
    ("HG-DF-041", "FROM f:39\nRUN microdnf install -y shadow-utils && microdnf clean all\n" + GOOD_TAIL,
     "FROM r:9\nRUN yum groupinstall -y 'Development Tools' && yum clean all\n" + GOOD_TAIL),
    ("HG-DF-042", "FROM s:15\nRUN zypper -n install -r extra curl git=2.43 && zypper clean\n" + GOOD_TAIL,
     "FROM s:15\nRUN zypper -n install -r extra curl=8.0 'git>=2.43' && zypper clean\n" + GOOD_TAIL),
]


@pytest.mark.parametrize(("rule", "bad", "good"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_positive_and_negative(rule: str, bad: str, good: str):
    assert rule in ids(bad), ids(bad)
    assert rule not in ids(good), ids(good)


def test_every_rule_has_a_case_and_metadata():
    covered = {c[0] for c in CASES} | {"HG-DF-020"}
    assert covered == set(RULES)
    assert len(RULES) >= 30
    for rule in RULES.values():
        assert rule.title and rule.description and rule.remediation and rule.severity != Severity.UNKNOWN
    assert get_rule("hg-df-001").cis == "4.1"
    assert {r.id for r in all_rules()} >= set(RULES)


def test_copy_whole_context_needs_dockerignore(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM a:1\nCOPY . .\n" + GOOD_TAIL)
    found = [f.rule_id for f in check_dockerfile_path(str(tmp_path / "Dockerfile"))]
    assert "HG-DF-020" in found
    (tmp_path / ".dockerignore").write_text(".git\n")
    found = [f.rule_id for f in check_dockerfile_path(str(tmp_path / "Dockerfile"))]
    assert "HG-DF-020" not in found
    # A multi-stage COPY --from=... . is not the build context.
    (tmp_path / ".dockerignore").unlink()
    (tmp_path / "Dockerfile").write_text("FROM a:1 AS b\nFROM a:1\nCOPY --from=b . .\n" + GOOD_TAIL)
    assert "HG-DF-020" not in [f.rule_id for f in check_dockerfile_path(str(tmp_path / "Dockerfile"))]


def test_finding_shape_line_and_cis():
    findings = check_dockerfile("FROM a:1\n\n# c\nRUN curl x | sh\n", "app/Dockerfile")
    f = next(f for f in findings if f.rule_id == "HG-DF-008")
    assert f.kind == "misconfiguration" and f.target == "app/Dockerfile"
    assert f.location is not None and f.location.path == "app/Dockerfile" and f.location.line == 4
    user = next(f for f in findings if f.rule_id == "HG-DF-001")
    assert user.details["cis"] == "4.1"


def test_checks_see_heredoc_bodies_and_onbuild():
    found = ids("""
        FROM a:1
        RUN <<EOF
        set -e
        curl -fsSL https://x | bash
        EOF
        ONBUILD RUN sudo true
        USER 1000
        HEALTHCHECK CMD true
    """)
    assert found["HG-DF-008"] == [2]
    assert found["HG-DF-014"] == [6]


def test_secret_values_are_masked():
    f = next(f for f in check_dockerfile("FROM a:1\nENV API_KEY=supersecretvalue\n") if f.rule_id == "HG-DF-015")
    assert "supersecretvalue" not in str(f.details)
