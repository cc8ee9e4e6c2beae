"""The scan pipeline: source → per-layer analysis (cached) → squash → inventory → ScanResult.

The CLI, the admission webhook and fleet scans all call these functions; none of them opens an
image any other way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hullguard.image.cache import LayerCache, default_dir
from hullguard.image.layers import LayerResult, analyze_layer, squash
from hullguard.image.source import ImageSource, Platform, SourceError
from hullguard.image.streams import Budget, HashingReader, ReadAhead, decompressed
from hullguard.inventory.assemble import assemble, pick_os
from hullguard.inventory.base import Analyzer
from hullguard.inventory.registry import all_analyzers
from hullguard.model import Artifact, HullguardError, Layer, ScanResult

GiB = 1024**3


@dataclass
class ScanOptions:
    cache_dir: str = ""
    use_cache: bool = True
    platform: Platform | None = None
    insecure: bool = False
    username: str = ""
    password: str = ""
    timeout: float = 30.0
    max_uncompressed: int = 32 * GiB
    max_entries: int = 10_000_000
    analyzers: list[Analyzer] | None = None
    progress: Callable[[str, int, int], None] | None = None  # (description, done, total)
    # Image configuration checks, and Dockerfile/Kubernetes checks on such files in the artifact.
    misconfig: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def _split_ref(path: str) -> tuple[str, str]:
    """"PATH[:REF]" where PATH itself may contain colons: the longest existing prefix wins."""
    if os.path.exists(path):
        return path, ""
    idx = path.find(":")
    while idx > 0:
        if os.path.exists(path[:idx]):
            return path[:idx], path[idx + 1 :]
        idx = path.find(":", idx + 1)
    raise SourceError(f"{path}: no such file or directory")


def open_source(target: str, opts: ScanOptions) -> ImageSource | str:
    """An ImageSource for an image target, or the path string for a root filesystem."""
    from hullguard.image.docker_archive import DockerArchiveSource
    from hullguard.image.oci_layout import OCILayoutSource

    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("docker-archive", "oci-dir", "oci", "oci-archive", "registry", "docker", "dir", "fs"):
        if scheme == "docker-archive":
            path, tag = _split_ref(rest)
            return DockerArchiveSource(path, tag=tag, name=target)
        if scheme in ("oci-dir", "oci"):
            path, ref = _split_ref(rest)
            return OCILayoutSource(path, archive=False, ref=ref, platform=opts.platform, name=target)
        if scheme == "oci-archive":
            path, ref = _split_ref(rest)
            return OCILayoutSource(path, archive=True, ref=ref, platform=opts.platform, name=target)
        if scheme in ("dir", "fs"):
            return rest
        return _registry(rest.removeprefix("//"), opts)
    if os.path.isdir(target):
        if os.path.isfile(os.path.join(target, "oci-layout")):
            return OCILayoutSource(target, archive=False, platform=opts.platform, name=target)
        return target
    if os.path.exists(target):
        from hullguard.image.source import TarContainer

        container = TarContainer(target)
        try:
            is_oci = container.has("oci-layout")
            is_docker = container.has("manifest.json")
        finally:
            container.close()
        if is_docker:
            return DockerArchiveSource(target, name=target)
        if is_oci:
            return OCILayoutSource(target, archive=True, platform=opts.platform, name=target)
        raise SourceError(f"{target} is a tar archive but neither a docker-archive nor an OCI layout")
    from hullguard.image.registry import looks_like_reference

    if looks_like_reference(target) and ("/" in target or ":" in target or "@" in target):
        return _registry(target, opts)
    raise SourceError(f"{target}: no such file, and not an image reference")


def _registry(ref: str, opts: ScanOptions) -> ImageSource:
    from hullguard.image.registry import Credentials, RegistrySource

    creds = Credentials(opts.username, opts.password) if (opts.username or opts.password) else None
    return RegistrySource(ref, platform=opts.platform, insecure=opts.insecure, credentials=creds,
                          timeout=opts.timeout)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analyze_layers(source: ImageSource, analyzers: list[Analyzer], opts: ScanOptions,
                   timings: dict[str, float]) -> tuple[list[LayerResult], int]:
    cache = LayerCache(opts.cache_dir or default_dir(), analyzers) if opts.use_cache else None
    results: dict[str, LayerResult] = {}
    todo: list[Layer] = []
    for layer in source.layers:
        if layer.digest in results or any(t.digest == layer.digest for t in todo):
            continue
        cached = cache.get(layer.digest) if cache else None
        if cached is not None:
            results[layer.digest] = cached
        else:
            todo.append(layer)
    hits = len({layer.digest for layer in source.layers}) - len(todo)
    budget = Budget(opts.max_uncompressed, opts.max_entries)
    verify_diff = getattr(source, "verify_diff_ids", False)
    total = len(todo)
    if opts.progress:
        opts.progress("reading layers", 0, total)
    t0 = time.perf_counter()
    for done, (layer, raw) in enumerate(source.blobs(todo), start=1):
        what = f"layer {layer.digest}"
        stream = decompressed(raw, budget, what)
        if verify_diff and layer.diff_id:
            stream = HashingReader(stream, layer.diff_id, f"{what} (uncompressed)")  # type: ignore[assignment]
        ahead = ReadAhead(stream)
        try:
            result = analyze_layer(ahead, layer.digest, analyzers, budget)
            # Read to the end so that the digests are checked over every byte, not just the tar part.
            _drain(ahead)
        finally:
            ahead.close()
        if isinstance(raw, HashingReader):
            raw.drain()
            raw.finish()
        if isinstance(stream, HashingReader):
            stream.finish()
        results[layer.digest] = result
        if cache:
            cache.put(result)
        if opts.progress:
            opts.progress(f"layer {done}/{total}", done, total)
    timings["read_layers"] = round(time.perf_counter() - t0, 4)
    missing = [layer.digest for layer in todo if layer.digest not in results]
    if missing:
        raise SourceError(f"layer {missing[0]} was not found in the image")
    return [results[layer.digest] for layer in source.layers], hits


def _drain(stream: object) -> None:
    read = stream.read  # type: ignore[attr-defined]
    while read(1 << 20):
        pass


def scan_image(target: str, opts: ScanOptions | None = None) -> ScanResult:
    opts = opts or ScanOptions()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    analyzers = opts.analyzers if opts.analyzers is not None else all_analyzers()
    source = open_source(target, opts)
    if isinstance(source, str):
        return scan_fs(source, opts, name=target)
    if opts.misconfig:
        from hullguard.detect.misconfig.image import ConfigFilesAnalyzer, ImageEntriesAnalyzer

        analyzers = [*analyzers, ImageEntriesAnalyzer(), ConfigFilesAnalyzer()]
    with source:
        timings["resolve"] = round(time.perf_counter() - started, 4)
        layer_results, hits = analyze_layers(source, analyzers, opts, timings)
        result = _finish(source.artifact, source.layers, layer_results, timings, misconfig=opts.misconfig)
    result.timings["cache_hits"] = hits
    result.timings["total"] = round(time.perf_counter() - started, 4)
    return result


def scan_fs(path: str, opts: ScanOptions | None = None, name: str = "") -> ScanResult:
    from hullguard.image.rootfs import analyze_tree

    opts = opts or ScanOptions()
    started = time.perf_counter()
    analyzers = opts.analyzers if opts.analyzers is not None else all_analyzers()
    layer_result = analyze_tree(path, analyzers)
    artifact = Artifact(name=name or path, type="filesystem")
    result = _finish(artifact, [], [layer_result], {})
    if opts.misconfig:
        from hullguard.detect.misconfig.tree import check_tree

        t0 = time.perf_counter()
        checked = check_tree(path)
        result.findings.extend(checked.findings)
        result.warnings.extend(checked.errors)
        result.timings["misconfig"] = round(time.perf_counter() - t0, 4)
    result.timings["total"] = round(time.perf_counter() - started, 4)
    return result


def _finish(artifact: Artifact, layers: list[Layer], layer_results: list[LayerResult],
            timings: dict[str, float], misconfig: bool = False) -> ScanResult:
    t0 = time.perf_counter()
    squashed = squash(layer_results)
    # A Dockerfile or manifest that a later layer replaced or deleted is not in the image; unlike
    # a secret, its old contents configure nothing.
    squashed.findings = [(i, p, f) for i, p, f in squashed.findings
                         if f.kind != "misconfiguration" or squashed.layer_of.get(p) == i]
    os_info = pick_os(squashed)
    packages, findings = assemble(squashed, layers, os_info)
    timings["assemble"] = round(time.perf_counter() - t0, 4)
    warnings: list[str] = []
    for lr in layer_results:
        warnings.extend(lr.warnings)
    if misconfig:
        from hullguard.detect.misconfig.image import check_image

        image_findings, image_warnings = check_image(artifact, layers, squashed, packages)
        findings.extend(image_findings)
        warnings.extend(image_warnings)
    return ScanResult(artifact=artifact, os=os_info, layers=list(layers), packages=packages, findings=findings,
                      warnings=warnings, timings=timings, generated_at=_now())


__all__ = ["HullguardError", "ScanOptions", "open_source", "scan_fs", "scan_image"]
