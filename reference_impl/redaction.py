"""Secret values never leave the process: one registry and one scrubber.

Store credentials (``[storage.*] secrets``) are read from the environment when a store is
used and registered here; every coded error (``ReferenceImplError``, the plugin's
``PlanguardError``) and every engine message that planguard repeats passes through
:func:`redact`, which replaces each registered value, and the value of each well-known
credential environment variable that is set (a session factory reads those itself), by
``***``.  Engine-free and dependency-free: the lowest module of the package.
"""

from __future__ import annotations

import os
import re

MASK = "***"
MIN_SECRET_LENGTH = 8
"""Shorter values are not scrubbed: no store issues such a credential, and replacing every
``s`` or ``key`` of every message would make the messages unreadable (and say where the
secret is)."""
CREDENTIAL_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)
"""Environment variables whose values are credentials whoever set them."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Remember ``value`` as a secret of this process (values shorter than
    :data:`MIN_SECRET_LENGTH` are ignored)."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registered.add(value)


def secret_values() -> list[str]:
    """Every value :func:`redact` hides, longest first (a secret holding another wins)."""
    values = set(_registered)
    values.update(
        v
        for name in CREDENTIAL_ENVIRONMENT
        if len(v := os.environ.get(name, "")) >= MIN_SECRET_LENGTH
    )
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret value replaced by ``***`` and terminal colour codes
    (which deltalake puts in its error chains) removed."""
    if not text:
        return text
    out = _ANSI.sub("", text) if "\x1b" in text else text
    for value in secret_values():
        if value in out:
            out = out.replace(value, MASK)
    return out
