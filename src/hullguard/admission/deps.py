"""What the webhook asks of the outside world (registry, signatures, scans), behind small
injectable interfaces, with a TTL cache and one in-flight call per key.

The API server waits on every admission request, so a dependency call never blocks a request past
its policy's deadline: the call runs in a pool, the request waits up to the deadline and then
follows the policy's failurePolicy, while the call finishes in the background and fills the cache
for the next request.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

from hullguard.model import HullguardError, ScanResult


class DependencyError(Exception):
    """A dependency failed or did not answer in time: the policy's failurePolicy decides."""


@dataclass
class VerifyOutcome:
    verified: bool
    digest: str = ""
    reason: str = ""
    signers: list[str] = field(default_factory=list)


class Backend(Protocol):
    def resolve(self, reference: str, *, insecure: bool, timeout: float) -> str: ...

    def verify_image(self, reference: str, keys: list[bytes], *, insecure: bool, timeout: float) -> VerifyOutcome: ...

    def verify_attestation(self, reference: str, keys: list[bytes], predicate_type: str, *, insecure: bool,
                           timeout: float) -> VerifyOutcome: ...

    def scan(self, reference: str, *, insecure: bool, timeout: float, db: str) -> ScanResult: ...


def _outcome(result: Any) -> VerifyOutcome:
    checks = getattr(result, "checks", []) or []
    signers = [str(getattr(c, "key", "")) for c in checks if getattr(c, "ok", False)]
    return VerifyOutcome(bool(getattr(result, "verified", False)), str(getattr(result, "digest", "")),
                         str(getattr(result, "reason", "")), signers)


class RealBackend:
    """The registry client, hullguard.supply.verify and hullguard.scan; imported on first use so
    the webhook starts without them and reports a clear reason when one is missing."""

    def resolve(self, reference: str, *, insecure: bool, timeout: float) -> str:
        from hullguard.image.registry import Reference, RegistryClient

        ref = Reference.parse(reference)
        if ref.digest:
            return ref.digest
        client = RegistryClient(ref, insecure=insecure, timeout=timeout)
        try:
            _, _, digest = client.manifest(ref.tag or ref.reference)
        finally:
            client.close()
        return digest

    def _supply(self) -> Any:
        try:
            from hullguard.supply import verify
        except ImportError as exc:
            raise DependencyError(f"signature verification is unavailable ({exc})") from None
        return verify

    def verify_image(self, reference: str, keys: list[bytes], *, insecure: bool, timeout: float) -> VerifyOutcome:
        result = self._supply().verify_image(reference, list(keys), insecure=insecure, timeout=timeout)
        return _outcome(result)

    def verify_attestation(self, reference: str, keys: list[bytes], predicate_type: str, *, insecure: bool,
                           timeout: float) -> VerifyOutcome:
        result = self._supply().verify_attestation(reference, list(keys), predicate_type=predicate_type,
                                                   insecure=insecure, timeout=timeout)
        return _outcome(result)

    def scan(self, reference: str, *, insecure: bool, timeout: float, db: str) -> ScanResult:
        from hullguard.detect.vulns import apply
        from hullguard.scan import ScanOptions, scan_image
        from hullguard.vulndb import open_for_scan

        result = scan_image(reference, ScanOptions(insecure=insecure, timeout=timeout))
        store = open_for_scan(db, quiet=True)
        try:
            return apply(result, store)
        finally:
            close = getattr(store, "close", None)
            if close:
                close()


class _Done:
    """A finished Future without the Condition and lock a real one carries: the warm path asks
    for cached values many times per request."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class Dependencies:
    """TTL cache + single flight + deadlines around a Backend."""

    def __init__(self, backend: Backend | None = None, *, ttl: float = 300.0, failure_ttl: float = 30.0,
                 max_entries: int = 10_000, workers: int = 16, scan_workers: int = 2,
                 max_inflight: int = 512) -> None:
        self.backend: Backend = backend or RealBackend()
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.max_entries = max_entries
        self.max_inflight = max_inflight
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        self._inflight: dict[tuple[Any, ...], Future[Any]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hg-dep")
        # Scans are heavy: a separate small pool so they never starve signature checks.
        self._scan_pool = ThreadPoolExecutor(max_workers=scan_workers, thread_name_prefix="hg-scan")
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._scan_pool.shutdown(wait=False, cancel_futures=True)

    def cached(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            entry = self._cache.get(key)
            if entry and entry[0] > time.monotonic():
                return entry[1]
        return None

    def _store(self, key: tuple[Any, ...], value: Any, ttl: float) -> None:
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def start(self, key: tuple[Any, ...], fn: Callable[[], Any], ok: Callable[[Any], bool] = bool,
              pool: str = "dep") -> Future[Any]:
        """A future for fn's value: done at once from the cache, else shared with any call in flight."""
        with self._lock:
            entry = self._cache.get(key)
            if entry and entry[0] > time.monotonic():
                self.hits += 1
                return _Done(entry[1])  # type: ignore[return-value]
            running = self._inflight.get(key)
            if running is not None:
                return running
            if len(self._inflight) >= self.max_inflight:
                # A flood of distinct images must not queue registry calls without bound.
                raise DependencyError(f"{len(self._inflight)} registry calls already in flight; try again")
            self.misses += 1
            executor = self._scan_pool if pool == "scan" else self._pool

            def run() -> Any:
                try:
                    value = fn()
                except HullguardError as exc:
                    raise DependencyError(_one_line(str(exc))) from None
                except DependencyError:
                    raise
                except Exception as exc:  # a dependency's bug must not take the webhook down
                    raise DependencyError(f"{type(exc).__name__}: {_one_line(str(exc))}") from None
                self._store(key, value, self.ttl if ok(value) else self.failure_ttl)
                return value

            fut: Future[Any] = executor.submit(run)
            self._inflight[key] = fut
        fut.add_done_callback(lambda _f: self._forget(key, _f))
        return fut

    def _forget(self, key: tuple[Any, ...], fut: Future[Any]) -> None:
        with self._lock:
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    @staticmethod
    def wait(fut: Future[Any], deadline: float, what: str) -> Any:
        remaining = deadline - time.monotonic()
        try:
            return fut.result(timeout=max(remaining, 0.0))
        except FutureTimeout:
            raise DependencyError(f"{what} did not finish within the policy timeout") from None

    # -- the three questions the policies ask ----------------------------------------------------

    def resolve(self, image: str, insecure: bool, timeout: float) -> Future[Any]:
        def call() -> str:
            return self.backend.resolve(image, insecure=insecure, timeout=timeout)

        if self.cached(("digest", image)) is None:
            verifying = self._verify_in_flight(image)
            if verifying is not None:
                return self._digest_after(verifying, ("digest", image), call)
        return self.start(("digest", image), call)

    def _verify_in_flight(self, image: str) -> Future[Any] | None:
        with self._lock:
            return next((f for k, f in self._inflight.items() if k[0] == "verify" and k[1] == image), None)

    def _digest_after(self, verifying: Future[Any], key: tuple[Any, ...], call: Callable[[], str]) -> Future[Any]:
        """A signature check of this tag already in flight resolves it too (the verifier reports the
        digest it checked): take its digest rather than asking the registry for the same manifest
        twice in one request, and resolve on our own only when it has none."""
        out: Future[Any] = Future()

        def relay(src: Future[Any]) -> None:
            try:
                out.set_result(src.result())
            except BaseException as exc:  # the DependencyError the policy's failurePolicy judges
                out.set_exception(exc)

        def after(done: Future[Any]) -> None:
            try:
                digest = str(getattr(done.result(), "digest", "") or "")
            except Exception:
                digest = ""
            if digest:
                out.set_result(digest)
                return
            try:
                nxt = self.start(key, call)
            except DependencyError as exc:
                out.set_exception(exc)
                return
            if isinstance(nxt, _Done):
                out.set_result(nxt.value)
            else:
                nxt.add_done_callback(relay)

        verifying.add_done_callback(after)
        return out

    def verify(self, image: str, keys: tuple[bytes, ...], predicate_type: str, insecure: bool,
               timeout: float) -> Future[Any]:
        """Signatures belong to a digest: a tag is resolved first (1 round trip, cached), and the
        verdict is cached by digest, so every tag and replica of one image shares it."""

        def call() -> VerifyOutcome:
            from hullguard.image.registry import Reference

            ref = Reference.parse(image)
            name = f"{ref.registry}/{ref.repository}"
            digest = ref.digest or self.cached(("digest", image))
            target = image
            if digest:
                hit = self.cached(("verified", f"{name}@{digest}", keys, predicate_type))
                if hit is not None:
                    return hit
                target = f"{name}@{digest}"
            # An unresolved tag goes to the verifier as it is: it resolves the digest itself, which
            # saves a round trip on the cold path, and reports the digest it checked.
            if predicate_type:
                outcome = self.backend.verify_attestation(target, list(keys), predicate_type, insecure=insecure,
                                                          timeout=timeout)
            else:
                outcome = self.backend.verify_image(target, list(keys), insecure=insecure, timeout=timeout)
            outcome.digest = outcome.digest or str(digest or "")
            if outcome.digest:
                ttl = self.ttl if outcome.verified else self.failure_ttl
                self._store(("verified", f"{name}@{outcome.digest}", keys, predicate_type), outcome, ttl)
                if not ref.digest:
                    self._store(("digest", image), outcome.digest, self.ttl)
            return outcome

        return self.start(("verify", image, keys, predicate_type), call, ok=lambda v: v.verified)

    def scan(self, image: str, digest: str, insecure: bool, timeout: float, db: str, results_dir: str
             ) -> Future[Any]:
        def call() -> ScanResult:
            cached = _read_result(results_dir, digest)
            if cached is not None:
                return cached
            pinned = image.split("@", 1)[0] + "@" + digest if digest else image
            result = self.backend.scan(pinned, insecure=insecure, timeout=timeout, db=db)
            _write_result(results_dir, digest, result)
            return result

        return self.start(("scan", digest or image, db), call, ok=lambda _v: True, pool="scan")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def result_path(results_dir: str, digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if not results_dir or not hexpart or not hexpart.isalnum() or not algo.isalnum():
        return ""
    return os.path.join(results_dir, f"{algo}-{hexpart}.json")


def _read_result(results_dir: str, digest: str) -> ScanResult | None:
    """A `hullguard image --format json` result saved as DIR/sha256-<hex>.json (by CI or a previous scan)."""
    import msgspec

    path = result_path(results_dir, digest)
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(256 << 20)
    except OSError:
        return None
    try:
        return msgspec.json.decode(data, type=ScanResult)
    except msgspec.DecodeError as exc:
        raise DependencyError(f"cached scan result {path} is unreadable: {_one_line(str(exc))}") from None


def _write_result(results_dir: str, digest: str, result: ScanResult) -> None:
    import msgspec

    path = result_path(results_dir, digest)
    if not path:
        return
    try:
        os.makedirs(results_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(result))
        os.replace(tmp, path)
    except OSError:
        pass  # the in-memory cache still holds it; a read-only results dir is a valid deployment
