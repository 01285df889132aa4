"""How the harness checks an HTTPS proxy's certificates (probes and the bulk engine alike).

By default against the system's certificate authorities, with the host name checked against the
SNI (the route's host); ``--proxy-tls-verify PATH`` trusts a CA file instead (a staging proxy
with its own CA, or the local target's generated one), ``false`` skips verification (a
self-signed staging proxy: the answers are still judged, the certificate is not).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError


@dataclass(frozen=True)
class TLSVerify:
    """``ca_file`` None and ``verify`` True: the system's CAs; ``verify`` False: none."""

    verify: bool = True
    ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2+, ALPN http/1.1 (the engine and probes speak HTTP/1.1)."""
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(
                cafile=None if self.ca_file is None else os.fspath(self.ca_file)
            )
        context.set_alpn_protocols(["http/1.1"])
        return context

    def describe(self) -> str:
        if not self.verify:
            return "not verified"
        return "system CAs" if self.ca_file is None else f"CA file {self.ca_file}"


#: Certificates are not checked (probes that expect no route to answer: a proxy presents its
#: default certificate for a host it does not serve, and the status is what is judged).
UNVERIFIED = TLSVerify(verify=False)


def parse_tls_verify(value: str, where: str) -> TLSVerify:
    """``true`` (system CAs), ``false`` (no verification) or the path of a PEM CA file, which
    must load; ConfigError naming ``where`` otherwise."""
    text = value.strip()
    if text.lower() == "true":
        return TLSVerify()
    if text.lower() == "false":
        return TLSVerify(verify=False)
    if not text:
        raise ConfigError(f"{where} must be true, false or a CA file (PEM), got {value!r}")
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{where} must be true, false or a CA file (PEM); {value!r} is not a file"
        )
    try:
        ssl.create_default_context(cafile=os.fspath(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a readable PEM CA file ({exc})") from None
    return TLSVerify(ca_file=path.resolve())
