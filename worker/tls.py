"""TLS for the two wires (IMAP and SMTP): verified unless the settings say otherwise.

Python's ``imaplib`` verifies nothing when it is given no context (neither ``IMAP4_SSL``
nor ``starttls()``), so every TLS connection of the service gets an explicit one from
here: the certificate chain and the host name are checked against the system's CAs, or
only against the bundle the settings name. Turning verification off is logged once per
process and wire, as a warning that names the setting.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def client_context(wire: str, *, verify: bool, ca_file: Path | None, host: str) -> ssl.SSLContext:
    """The context for a TLS client connection of ``wire`` ('IMAP' or 'SMTP') to ``host``."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        warn_once(
            f"{wire}-noverify",
            "%s: TLS certificate verification is OFF (CCM_%s_TLS_VERIFY=false): the "
            "connection to %s is encrypted but not authenticated, anyone on the path can "
            "read the password; give the server's CA with CCM_%s_CA_FILE instead",
            wire,
            wire,
            host,
            wire,
        )
    return context


def warn_plaintext(wire: str, host: str) -> None:
    """A plain (``none``) connection off this machine sends the password in clear."""
    if not is_loopback(host):
        warn_once(
            f"{wire}-plain",
            "%s: no TLS (CCM_%s_SECURITY=none) to %s: the password and the mail cross the "
            "network in clear",
            wire,
            wire,
            host,
        )


def warn_once(key: str, message: str, *args: object) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_verify_error(exc: ssl.SSLCertVerificationError) -> str:
    """The reason OpenSSL gave, without its '[SSL: …] (_ssl.c:…)' wrapping."""
    return str(exc.verify_message or exc.reason or exc).strip()
