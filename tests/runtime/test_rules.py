"""Rules files: items, append and override semantics, exceptions, skips and malformed files."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from hullguard.runtime.engine import Engine
from hullguard.runtime.rules import RulesError, Ruleset, default_rules_path, load_rules


def load(*texts: str) -> Ruleset:
    return load_rules(texts=[(f"file{i}.yaml", textwrap.dedent(t)) for i, t in enumerate(texts)])


def fired(rs: Ruleset, ev: dict[str, Any]) -> list[str]:
    return [a.rule for a in Engine(rs, rule_matching="all", hostname="h").process(ev)]


def status(rs: Ruleset, name: str) -> str:
    return next(s.status for s in rs.statuses if s.name == name)


BASE = """
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type = execve and evt.dir = <
- rule: Shell
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: shell %proc.name
  priority: WARNING
  tags: [shell]
"""
EV = {"evt.type": "execve", "evt.dir": "<", "proc.name": "zsh", "proc.pname": "sshd", "fd.name": "/etc/x"}


def test_basic_rule_and_alert_shape() -> None:
    rs = load(BASE)
    alerts = Engine(rs, hostname="node1").process({**EV, "proc.name": "bash", "evt.time": 1_700_000_000_123_456_789})
    assert len(alerts) == 1
    d = alerts[0].to_dict()
    assert d == {"hostname": "node1", "output": "22:13:20.123456789: Warning shell bash",
                 "output_fields": {"proc.name": "bash"}, "priority": "Warning", "rule": "Shell",
                 "source": "syscall", "tags": ["shell"], "time": "2023-11-14T22:13:20.123456789Z"}


def test_list_append_legacy_and_override() -> None:
    rs = load(BASE, """
    - list: shells
      items: [zsh]
      append: true
    """)
    assert fired(rs, EV) == ["Shell"]
    rs = load(BASE, """
    - list: shells
      items: [fish]
      override:
        items: replace
    """)
    assert fired(rs, {**EV, "proc.name": "bash"}) == []
    assert fired(rs, {**EV, "proc.name": "fish"}) == ["Shell"]


def test_list_reference_inside_list() -> None:
    rs = load("""
    - list: a
      items: [bash]
    - list: b
      items: [a, zsh]
    - rule: R
      desc: d
      condition: proc.name in (b)
      output: o
      priority: INFO
    """)
    assert fired(rs, {**EV, "proc.name": "bash"}) == ["R"]
    assert fired(rs, EV) == ["R"]


def test_macro_append_and_replace() -> None:
    rs = load(BASE, """
    - macro: spawned
      condition: and proc.pname = sshd
      append: true
    - list: shells
      items: [zsh]
      append: true
    """)
    assert fired(rs, EV) == ["Shell"]
    assert fired(rs, {**EV, "proc.pname": "cron"}) == []
    rs = load(BASE, """
    - macro: spawned
      condition: evt.type = openat
      override:
        condition: replace
    """)
    assert fired(rs, {**EV, "proc.name": "bash"}) == []
    assert fired(rs, {**EV, "evt.type": "openat", "proc.name": "bash"}) == ["Shell"]


def test_rule_append_condition_and_exceptions() -> None:
    rs = load(BASE, """
    - rule: Shell
      condition: and not proc.pname = sshd
      append: true
    """)
    assert fired(rs, {**EV, "proc.name": "bash"}) == []
    assert fired(rs, {**EV, "proc.name": "bash", "proc.pname": "cron"}) == ["Shell"]


def test_rule_override_per_key() -> None:
    rs = load(BASE, """
    - rule: Shell
      output: (parent %proc.pname)
      priority: CRITICAL
      tags: [extra]
      desc: more
      override:
        output: append
        priority: replace
        tags: append
        desc: append
    """)
    a = Engine(rs, hostname="h").process({**EV, "proc.name": "bash"})[0]
    assert a.priority == "Critical"
    assert a.output.endswith("Critical shell bash (parent sshd)")
    assert a.tags == ["shell", "extra"]
    assert rs.rules[0].desc == "a shell more"


def test_rule_disabled_by_enabled_false_and_by_later_override() -> None:
    rs = load(BASE.replace("tags: [shell]", "tags: [shell]\n  enabled: false"))
    assert status(rs, "Shell") == "disabled"
    rs = load(BASE.replace("tags: [shell]", "tags: [shell]\n  enabled: false"), """
    - rule: Shell
      enabled: true
    """)
    assert status(rs, "Shell") == "loaded"
    rs = load(BASE, """
    - rule: Shell
      enabled: false
      override:
        enabled: replace
    """)
    assert status(rs, "Shell") == "disabled"
    assert fired(rs, {**EV, "proc.name": "bash"}) == []


def test_redefinition_replaces() -> None:
    rs = load(BASE, BASE.replace("shell %proc.name", "again %proc.name"))
    assert len(rs.rules) == 1
    assert rs.rules[0].output.template == "again %proc.name"


def test_exceptions_tuple_single_field_and_list_values() -> None:
    rs = load("""
    - list: allowed_parents
      items: [cron]
    - rule: R
      desc: d
      condition: evt.type = execve
      output: o
      priority: NOTICE
      exceptions:
        - name: pairs
          fields: [proc.name, fd.name]
          comps: [=, startswith]
          values:
            - [bash, /etc/]
        - name: parents
          fields: proc.pname
          values: [allowed_parents, initd]
        - name: names_in
          fields: [proc.name, proc.pname]
          comps: [in, =]
          values:
            - [[vim, nano], sshd]
        - name: no_values_means_nothing
          fields: [proc.name]
    """)
    assert fired(rs, EV) == ["R"]
    assert fired(rs, {**EV, "proc.name": "bash"}) == []
    assert fired(rs, {**EV, "proc.pname": "cron"}) == []
    assert fired(rs, {**EV, "proc.pname": "initd"}) == []
    assert fired(rs, {**EV, "proc.name": "vim"}) == []
    assert fired(rs, {**EV, "proc.name": "vim", "proc.pname": "x"}) == ["R"]


def test_exception_values_appended_by_override() -> None:
    rs = load("""
    - rule: R
      desc: d
      condition: evt.type = execve
      output: o
      priority: NOTICE
      exceptions:
        - name: procs
          fields: [proc.name]
          values: [[bash]]
    - rule: R
      exceptions:
        - name: procs
          values: [[zsh]]
      override:
        exceptions: append
    """)
    assert fired(rs, EV) == []
    assert fired(rs, {**EV, "proc.name": "bash"}) == []
    assert fired(rs, {**EV, "proc.name": "sh"}) == ["R"]


def test_exception_quoting_survives_hostile_values() -> None:
    rs = load("""
    - rule: R
      desc: d
      condition: evt.type = execve
      output: o
      priority: NOTICE
      exceptions:
        - name: odd
          fields: [proc.cmdline]
          values: [['a "quoted" ) or (x']]
    """)
    assert fired(rs, {**EV, "proc.cmdline": 'a "quoted" ) or (x'}) == []
    assert fired(rs, {**EV, "proc.cmdline": "other"}) == ["R"]


def test_unsupported_field_skipped_with_file_and_line_rest_runs() -> None:
    rs = load(BASE, """
    - rule: Uses unknown
      desc: d
      condition: evt.type = execve and proc.imaginary = 1
      output: o
      priority: INFO
    """)
    st = next(s for s in rs.statuses if s.name == "Uses unknown")
    assert st.status == "skipped"
    assert "proc.imaginary" in st.reason and "file1.yaml:2" in st.reason
    assert fired(rs, {**EV, "proc.name": "bash"}) == ["Shell"]


def test_undefined_macro_named() -> None:
    rs = load("""
    - rule: R
      desc: d
      condition: spawned_thing and proc.name = x
      output: o
      priority: INFO
    """)
    st = rs.statuses[0]
    assert st.status == "error" and "undefined macro 'spawned_thing'" in st.reason


def test_unsupported_source_and_plugin_warning() -> None:
    rs = load("""
    - required_engine_version: 99.0.0
    - required_plugin_versions:
        - name: cloudtrail
          version: 0.1.0
    - rule: CT
      desc: d
      condition: ct.name = x
      output: o
      priority: INFO
      source: aws_cloudtrail
    """)
    assert status(rs, "CT") == "skipped"
    assert any("99.0.0" in w for w in rs.warnings)
    assert any("cloudtrail" in w for w in rs.warnings)


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("- rule: R\n  desc: d\n  condition: [unclosed\n", 4, "invalid YAML"),
    ("- rule: R\n  desc: d\n  output: o\n  priority: INFO\n", 1, "lacks condition"),
    ("- macro: m\n  condition: a\n- list: l\n  items: [a]\n- list: nope\n  items: [b]\n  append: true\n", 5,
     "no list by that name"),
    ("- rule: R\n  desc: d\n  condition: a\n  output: o\n  priority: LOUD\n", 1, "invalid priority"),
    ("- list: l\n  items: x\n", 1, "needs 'items'"),
    ("- macro: m\n  condition: a\n- macro: m\n  condition: b\n  override:\n    condition: merge\n", 3,
     "append or replace"),
    ("- rule: R\n  desc: d\n  condition: a\n  output: o\n  priority: INFO\n- rule: R\n  priority: INFO\n"
     "  override:\n    priority: append\n", 6, "cannot be overridden"),
    ("just a string\n", 1, "YAML list"),
    ("- [1, 2]\n", 1, "expected a rule"),
])
def test_malformed_files_report_file_line_and_text(text: str, line: int, needle: str) -> None:
    with pytest.raises(RulesError) as exc:
        load_rules(texts=[("bad.yaml", text)])
    msg = str(exc.value)
    assert f"bad.yaml:{line}" in msg and needle in msg


def test_error_carries_offending_text(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("- rule: R\n  desc: d\n  output: o\n  priority: INFO\n")
    with pytest.raises(RulesError, match=r"r\.yaml:1: .*'- rule: R'"):
        load_rules([str(p)])
    with pytest.raises(RulesError, match="cannot read"):
        load_rules([str(tmp_path / "missing.yaml")])


def test_bundled_rules_load_with_expected_statuses() -> None:
    rs = load_rules([default_rules_path()])
    counts: dict[str, int] = {}
    for s in rs.statuses:
        counts[s.status] = counts.get(s.status, 0) + 1
    assert len(rs.statuses) >= 50
    assert counts["loaded"] >= 50
    assert counts.get("error", 0) == 0
    assert status(rs, "Noisy debug rule") == "disabled"
    assert status(rs, "Container drift via chmod +x") == "loaded"
    assert status(rs, "Unknown field sample") == "skipped"
    assert status(rs, "Cloudtrail console login") == "skipped"
    assert {r.source for r in rs.rules} == {"syscall", "k8s_audit"}


def test_quoted_list_items_are_spliced_as_values() -> None:
    # Falco files quote items that contain '-' or '/' inside the YAML string: '"10.0.0.0/8"'.
    rs = load("""
    - list: private
      items: ['"10.0.0.0/8"', '"192.168.0.0/16"']
    - list: odd_names
      items: ['"75-system-updat"', plain]
    - rule: R
      desc: d
      condition: evt.type = connect and not fd.snet in (private) and not proc.name in (odd_names)
      output: o %fd.name
      priority: INFO
    """)
    ev = {"evt.type": "connect", "fd.sip": "10.0.0.1", "fd.dip": "8.8.8.8", "proc.name": "curl"}
    assert fired(rs, ev) == ["R"]
    assert fired(rs, {**ev, "fd.dip": "10.9.9.9"}) == []
    assert fired(rs, {**ev, "proc.name": "75-system-updat"}) == []


def test_falco_style_macros_load_and_run() -> None:
    # Constructs as they appear in Falco's default rules: comparisons without spaces, quoted
    # "<NA>", nested macro references, aname without index, list of lists in a macro.
    rs = load("""
    - required_engine_version: 17
    - macro: open_write
      condition: (evt.type in (open,openat,openat2) and evt.is_open_write=true and fd.typechar='f' and fd.num>=0)
    - macro: proc_name_exists
      condition: (proc.name!="<NA>")
    - list: a_bins
      items: [apt, dpkg]
    - list: b_bins
      items: [rpm]
    - macro: pkg
      condition: proc.name in (a_bins, b_bins) or proc.aname in (a_bins)
    - rule: Write etc
      desc: d
      condition: open_write and proc_name_exists and fd.name startswith /etc and not pkg
      output: "Write below /etc (file=%fd.name pcmdline=%proc.pcmdline gparent=%proc.aname[2] %container.info)"
      priority: ERROR
    """)
    ev = {"evt.type": "openat", "evt.arg.flags": "O_WRONLY", "fd.name": "/etc/x", "fd.typechar": "f", "fd.num": 3,
          "proc.name": "vi", "proc.pname": "bash"}
    assert fired(rs, ev) == ["Write etc"]
    assert fired(rs, {**ev, "proc.name": "rpm"}) == []
    assert fired(rs, {**ev, "_anc": ["sh", "dpkg"]}) == []
    assert fired(rs, {**ev, "fd.num": -1}) == []
