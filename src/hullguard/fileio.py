"""Reading files that come from users: bounded, with errors fit for one line on stderr."""

from __future__ import annotations

import os

from hullguard.model import HullguardError


def read_bounded(path: str | os.PathLike[str], limit: int, what: str = "",
                 error: type[Exception] = HullguardError) -> bytes:
    """The whole file, or ``error`` when it cannot be read or is larger than ``limit`` bytes.

    Reads at most ``limit + 1`` bytes, so a huge (or endless, like /dev/zero) file costs no more
    than the limit; ``what`` names the file's role in the message ("policy file", "public key").
    """
    name = f"{what} {os.fspath(path)}" if what else os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{name} is larger than {limit} bytes")
    return data
