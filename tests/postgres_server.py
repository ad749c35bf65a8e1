"""A real, throw-away PostgreSQL server for the tests and the benchmark.

``initdb`` and ``pg_ctl`` of the Debian ``postgresql`` package (``/usr/lib/postgresql/*/bin``)
run in a fresh temporary folder, as an unprivileged user when we are root (PostgreSQL refuses
to run as root; CI runs as root), listening on a free loopback port with password
(scram-sha-256) authentication only. :func:`postgres_binaries` says where the binaries are, or
None: the tests skip only then.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the unprivileged account that runs the server when the tests run as root: the Debian
#: package's own ``postgres`` user, else one created for the tests
SERVER_USER = "postgres"
FALLBACK_USER = "attribution-pg"


def postgres_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl, or None."""
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        if (initdb.parent / "pg_ctl").exists():
            try:
                found.append((int(initdb.parent.parent.name.split(".")[0]), initdb.parent))
            except ValueError:
                continue
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in (SERVER_USER, FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    FALLBACK_USER], check=True, capture_output=True)
    return pwd.getpwnam(FALLBACK_USER)


@dataclass
class PostgresServer:
    """A running server: a superuser ``admin`` and a login role ``analyst`` owning database
    ``crm``, both with passwords; :meth:`uri` builds connection URIs (without the password)."""

    bin_dir: Path
    folder: Path
    port: int
    account: pwd.struct_passwd | None
    admin_password: str = "admin-secret-Pq7"
    password: str = "analyst-secret-Zk4"
    host: str = "127.0.0.1"
    user: str = "analyst"
    database: str = "crm"

    #: False: fsync and full-page writes off (fast, for tests; the data is thrown away);
    #: True: the server's durable defaults (for the benchmark)
    durable: bool = False

    @classmethod
    def start(cls, bin_dir: Path | None = None, *, durable: bool = False) -> PostgresServer:
        bin_dir = bin_dir or postgres_binaries()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        account = _server_account()
        # not under pytest's tmp_path: that is private to root (0700), and the server's user
        # must own its data folder
        folder = Path(tempfile.mkdtemp(prefix="attribution-pg-"))
        server = cls(bin_dir, folder, _free_port(), account, durable=durable)
        try:
            server._init_and_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs = {}
        if self.account is not None:
            kwargs = {"user": self.account.pw_uid, "group": self.account.pw_gid}
        return subprocess.run(list(args), check=True, capture_output=True, text=True,
                              cwd=self.folder, env={"PATH": os.environ.get("PATH", ""),
                                                    "LC_ALL": "C.UTF-8"}, **kwargs)

    def _init_and_start(self) -> None:
        password_file = self.folder / "admin-password"
        password_file.write_text(self.admin_password + "\n")
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
            os.chown(password_file, self.account.pw_uid, self.account.pw_gid)
        os.chmod(self.folder, 0o700)
        data = self.folder / "data"
        self._run(str(self.bin_dir / "initdb"), "-D", str(data), "-U", "admin",
                  "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        password_file.unlink()
        options = (f"-p {self.port} -c listen_addresses={self.host} "
                   f"-c unix_socket_directories={self.folder} -c max_wal_size=4GB")
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                  "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")
        self.admin_sql(
            f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {self.database} OWNER {self.user}",
        )

    def uri(self, user: str | None = None, database: str | None = None, **params: str) -> str:
        """``postgresql://user@127.0.0.1:port/db`` with ``params`` as the query string."""
        from urllib.parse import quote

        base = (f"postgresql://{user or self.user}@{self.host}:{self.port}"
                f"/{database or self.database}")
        if params:
            base += "?" + "&".join(f"{k}={quote(v, safe='.')}" for k, v in params.items())
        return base

    def admin_sql(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser (each in its own transaction)."""
        import adbc_driver_postgresql.dbapi as pg

        uri = (f"postgresql://admin:{self.admin_password}@{self.host}:{self.port}/{database}")
        with pg.connect(uri, autocommit=True) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def sql(self, *statements: str) -> list[list[tuple[object, ...]]]:
        """Run statements as the analyst in ``crm``; each one's rows (empty for DDL)."""
        import adbc_driver_postgresql.dbapi as pg

        uri = (f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/"
               f"{self.database}")
        results = []
        with pg.connect(uri, autocommit=True) as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                results.append(cursor.fetchall() if cursor.description else [])
        return results

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                          "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the test session, stopped at its end. Skips only when the binaries are
    not installed (CI installs them: .ci/postgres.sh). Use it in a test module with
    ``from tests.postgres_server import postgres_server  # noqa: F401``."""
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL binaries not installed under /usr/lib/postgresql "
                    "(apt-get install postgresql; CI runs .ci/postgres.sh)")
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()
