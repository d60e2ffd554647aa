"""A small OAuth 2.0 authorization server on loopback, for the tests.

It plays the provider's part that a mail service needs, as Microsoft's and Google's do:

* ``POST /token`` (also ``/<tenant>/oauth2/v2.0/token``): the ``client_credentials`` grant
  (RFC 6749 §4.4) for a registered client, and the ``refresh_token`` grant (§6) with
  **rotation**: each refresh answers a new refresh token and the old one is refused from
  then on (``invalid_grant``), as a provider that detects replay does. Access tokens expire
  after ``lifetime`` seconds (the server's clock: ``time.time()``).
* ``POST /introspect`` (RFC 7662): what Dovecot's ``oauth2`` passdb and the SMTP sink ask;
  ``{"active": true, "username": ...}`` for a live token.
* ``GET /<tenant>/v2.0/.well-known/openid-configuration``: the tenant discovery MSAL does
  before asking for a token (over HTTPS only: MSAL accepts nothing else).

``revoke(token)`` ends a token (access or refresh) early, as an administrator would.
``grants`` counts what was asked. Runs in a thread of the test process; ``stop()`` ends it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOCALHOST = "127.0.0.1"


@dataclass
class _Client:
    secret: str
    user: str  # the mailbox an app-only token of this client may open


@dataclass
class _Access:
    user: str
    client_id: str
    scope: str
    expires_at: float


@dataclass
class TokenServer:
    scheme: str = "http"
    port: int = 0
    lifetime: float = 3600.0
    refresh_lifetime: float | None = None  # said as refresh_token_expires_in when set
    rotate: bool = True
    clients: dict[str, _Client] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> client, user
    access_tokens: dict[str, _Access] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)  # grant_type of every token request
    introspections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{LOCALHOST}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base}/introspect"

    # -- administration ------------------------------------------------------------

    def add_client(self, client_id: str, secret: str, user: str) -> None:
        with self.lock:
            self.clients[client_id] = _Client(secret, user)

    def issue_refresh_token(self, client_id: str, user: str) -> str:
        """What a person's consent gives: the seed of the refresh-token flow."""
        token = "rt-" + secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = (client_id, user)
        return token

    def revoke(self, token: str) -> None:
        with self.lock:
            self.refresh_tokens.pop(token, None)
            self.access_tokens.pop(token, None)

    def revoke_all(self, user: str) -> None:
        """Sign the user out everywhere: every token of theirs stops working."""
        with self.lock:
            for t in [t for t, (_, u) in self.refresh_tokens.items() if u == user]:
                del self.refresh_tokens[t]
            for t in [t for t, a in self.access_tokens.items() if a.user == user]:
                del self.access_tokens[t]

    def is_active(self, token: str) -> bool:
        with self.lock:
            access = self.access_tokens.get(token)
            return access is not None and access.expires_at > time.time()

    # -- the endpoints -------------------------------------------------------------

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        grant = form.get("grant_type", "")
        with self.lock:
            self.grants.append(grant)
            client = self.clients.get(client_id)
            if grant == "client_credentials":
                if client is None or not secrets.compare_digest(client.secret, secret):
                    return 401, _error("invalid_client", "AADSTS7000215: Invalid client secret.")
                return 200, self._issue(client_id, client.user, form.get("scope", ""))
            if grant == "refresh_token":
                if client is None:
                    return 401, _error("invalid_client", "unknown client")
                owner = self.refresh_tokens.get(form.get("refresh_token", ""))
                if owner is None or owner[0] != client_id:
                    return 400, _error(
                        "invalid_grant", "AADSTS70008: The refresh token has expired or is revoked."
                    )
                answer = self._issue(client_id, owner[1], form.get("scope", ""))
                if self.rotate:
                    del self.refresh_tokens[form["refresh_token"]]
                    new = "rt-" + secrets.token_urlsafe(24)
                    self.refresh_tokens[new] = owner
                    answer["refresh_token"] = new
                if self.refresh_lifetime is not None:
                    answer["refresh_token_expires_in"] = int(self.refresh_lifetime)
                return 200, answer
            return 400, _error("unsupported_grant_type", grant)

    def _issue(self, client_id: str, user: str, scope: str) -> dict[str, Any]:
        token = "at-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = _Access(user, client_id, scope, time.time() + self.lifetime)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(self.lifetime),
            "scope": scope,
        }

    def introspect(self, token: str) -> dict[str, Any]:
        with self.lock:
            self.introspections += 1
            access = self.access_tokens.get(token)
            if access is None or access.expires_at <= time.time():
                return {"active": False}
            return {
                "active": True,
                "username": access.user,
                "client_id": access.client_id,
                "scope": access.scope,
                "exp": int(access.expires_at),
            }

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        root = f"{self.base}/{tenant}"
        return {
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "tenant_region_scope": "EU",
        }


def _error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Dovecot's HTTP client reuses connections

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            form = self._form()
            if path == "/token" or path.endswith("/oauth2/v2.0/token"):
                self._send(*server.token(form, self.headers.get("Authorization")))
            elif path == "/introspect":
                self._send(200, server.introspect(form.get("token", "")))
            else:
                self._send(404, _error("not_found", path))

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                self._send(200, server.openid_configuration(parts[0]))
            else:
                self._send(404, _error("not_found", self.path))

    return Handler


@contextlib.contextmanager
def token_server(*, tls: ssl.SSLContext | None = None, **options: Any) -> Iterator[TokenServer]:
    """A running ``TokenServer`` on a free loopback port (HTTPS with ``tls``)."""
    server = TokenServer(scheme="https" if tls else "http", **options)
    httpd = ThreadingHTTPServer((LOCALHOST, 0), _handler(server))
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    server.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, name="token-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
