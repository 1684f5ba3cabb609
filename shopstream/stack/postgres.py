"""A project-local PostgreSQL cluster, made with the distribution's initdb and pg_ctl.

initdb and postgres refuse to run as root, so when we are root they run as the
``postgres`` system user (created by Debian's package) through ``runuser``, and
the cluster's folder belongs to that user. When that user cannot reach the state
dir (``/root`` is mode 700), the cluster lives in its home instead and the state
dir holds a symlink to it.

Authentication is by password (scram-sha-256, for TCP and the socket alike): ``up``
generates one, keeps it in the state dir's ``postgres-password`` (mode 0600, ours) and
puts it in the endpoint URL, which ``stack up`` prints as ``DATABASE_URL``. A cluster
made before passwords existed (no password file beside it) keeps its trust setup.

Run as root, preparing and purging never follow a symlink an other user could have
placed: the state dir's ``postgres`` is either a real folder or a symlink to exactly
the relocated folder in the database user's home, and that folder must be a real
folder; anything else is refused with one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import psycopg
from psycopg import sql

from shopstream.errors import StackError
from shopstream.stack.base import Part
from shopstream.stack.process import is_ours, read_pid, terminate

PG_ROOT = Path("/usr/lib/postgresql")
DB_SUPERUSER = "shopstream"
DB_NAME = "shopstream"
SYSTEM_USER = "postgres"
INSTALL_HINT = "install the PostgreSQL server: apt-get install postgresql"


def find_pg_bin() -> Path:
    """Debian's newest ``/usr/lib/postgresql/<ver>/bin``, else wherever initdb is on PATH."""
    versions = sorted(
        (path.parent for path in PG_ROOT.glob("*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    if versions:
        return versions[0]
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    raise StackError(f"PostgreSQL server binaries (initdb, pg_ctl) were not found; {INSTALL_HINT}")


PASSWORD_FILE = "postgres-password"  # noqa: S105 (a file name, not a password)


def database_url(port: int, database: str = DB_NAME, password: str | None = None) -> str:
    user = DB_SUPERUSER if password is None else f"{DB_SUPERUSER}:{password}"
    return f"postgresql+psycopg://{user}@127.0.0.1:{port}/{database}"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 (never through a symlink, never over a file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


class PostgresPart(Part):
    name = "postgres"
    title = "PostgreSQL"
    ready_timeout = 60.0
    stop_timeout = 30.0

    def ports(self) -> dict[str, int]:
        return {"postgres": self.config.postgres_port}

    @property
    def endpoint(self) -> str:
        return database_url(self.config.postgres_port, password=self.password())

    @property
    def password_file(self) -> Path:
        return self.config.state_dir.absolute() / PASSWORD_FILE

    def password(self) -> str | None:
        """The superuser's password, None for a cluster made with trust auth."""
        try:
            return self.password_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    @property
    def root(self) -> Path:
        """The cluster's folder: the state dir's ``postgres``, or the relocated folder
        its symlink points to (only that one: see :meth:`_checked_root`)."""
        return self._checked_root()

    def _relocated(self) -> Path | None:
        """Where the cluster lives when the state dir is out of the database user's reach."""
        user = self.run_as
        if user is None:
            return None
        state = self.config.state_dir.absolute()
        digest = hashlib.sha256(str(state).encode()).hexdigest()[:12]
        return Path(user.pw_dir) / f"shopstream-{digest}"

    def _checked_root(self) -> Path:
        """The cluster folder, refusing a symlink anywhere we did not put it."""
        home = self.home
        if not home.is_symlink():
            return home
        target = self._relocated()
        if target is None or Path(os.readlink(home)) != target:
            raise StackError(
                f"refusing to use {home}: it is a symlink to {os.readlink(home)}, "
                "not to the cluster's relocated folder; remove it"
            )
        _refuse_symlink(target)
        return target

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def server_log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def log_files(self) -> tuple[Path, ...]:
        return (self.server_log, self.config.state_dir.absolute() / "pg_ctl.log")

    # -- running as the database's system user -------------------------------------

    @cached_property
    def run_as(self) -> pwd.struct_passwd | None:
        """The system user that owns the cluster when we are root, else None (ourselves)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise StackError(
                f"PostgreSQL refuses to run as root and there is no '{SYSTEM_USER}' user; "
                f"{INSTALL_HINT} (it creates that user)"
            ) from None

    def _as_db_user(self, argv: Sequence[str]) -> list[str]:
        user = self.run_as
        return list(argv) if user is None else ["runuser", "-u", user.pw_name, "--", *argv]

    def _run(self, argv: Sequence[str], what: str, timeout: float = 120.0) -> None:
        log = self.log_files[1]
        log.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        with os.fdopen(os.open(log, flags, 0o644), "ab") as out:
            result = subprocess.run(
                self._as_db_user(argv),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                start_new_session=True,
            )
        if result.returncode != 0:
            raise StackError(f"PostgreSQL {what} failed (exit {result.returncode}); see {log}")

    def _reachable_by_db_user(self, path: Path) -> bool:
        probe = subprocess.run(
            self._as_db_user(["test", "-x", str(path)]), capture_output=True, check=False
        )
        return probe.returncode == 0

    def _make_root(self) -> None:
        """Create the cluster folder (or a relocated one), owned by the database's user.

        ``os.mkdir`` never follows a symlink in the last component, and ``lchown``
        never changes what a symlink points to.
        """
        user = self.run_as
        if self.home.is_symlink():
            target = self._checked_root()  # relocated earlier; recreate if deleted since
            with contextlib.suppress(FileExistsError):
                os.mkdir(target, 0o700)
            _refuse_symlink(target)
        elif self.home.is_dir():
            return
        else:
            target = self._new_root(user)
        if user is not None:
            os.chown(target, user.pw_uid, user.pw_gid, follow_symlinks=False)

    def _new_root(self, user: pwd.struct_passwd | None) -> Path:
        state = self.config.state_dir.absolute()
        state.mkdir(parents=True, exist_ok=True)
        target = self._relocated()
        if target is None or self._reachable_by_db_user(state):
            self.home.mkdir()
            return self.home
        with contextlib.suppress(FileExistsError):
            os.mkdir(target, 0o700)
        _refuse_symlink(target)
        self.home.symlink_to(target, target_is_directory=True)
        return target

    # -- life cycle ------------------------------------------------------------

    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and is_ours(pid, str(self.data_dir)) else None

    def connect_url(self, database: str = "postgres") -> str:
        """A libpq URL (no SQLAlchemy driver suffix) for psycopg."""
        password = self.password()
        user = DB_SUPERUSER if password is None else f"{DB_SUPERUSER}:{password}"
        return f"postgresql://{user}@127.0.0.1:{self.config.postgres_port}/{database}"

    def answers(self, timeout: float = 3.0) -> bool:
        try:
            with psycopg.connect(self.connect_url(), connect_timeout=max(1, int(timeout))) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def _prepare(self) -> None:
        bin_dir = find_pg_bin()
        self._make_root()
        if (self.data_dir / "PG_VERSION").is_file():
            return
        self.progress(f"creating a PostgreSQL cluster in {self.data_dir}")
        _refuse_symlink(self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        password = self.password()
        if password is None:
            password = secrets.token_urlsafe(24)
            with contextlib.suppress(FileNotFoundError):
                self.password_file.unlink()
            _write_private(self.password_file, password)
        # initdb reads the password from a file the database's user can read: a
        # private copy in the cluster's folder (owned by that user), deleted after
        pwfile = self.root / "initdb-password"
        with contextlib.suppress(FileNotFoundError):
            pwfile.unlink()
        _write_private(pwfile, password + "\n")
        user = self.run_as
        try:
            if user is not None:
                os.chown(pwfile, user.pw_uid, user.pw_gid, follow_symlinks=False)
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    DB_SUPERUSER,
                    "-A",
                    "scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _launch(self) -> None:
        self._run(["mkdir", "-p", str(self.socket_dir)], "socket dir")
        options = (
            f"-p {self.config.postgres_port} -c listen_addresses=127.0.0.1 -k {self.socket_dir}"
        )
        self._run(
            [
                str(find_pg_bin() / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.server_log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(self.ready_timeout)),
            ],
            "start",
            timeout=self.ready_timeout + 10,
        )

    def start(self) -> bool:
        started = super().start()
        self.create_database(DB_NAME)
        return started

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        with psycopg.connect(self.connect_url(), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        self.progress(f"stopping {self.title} (pid {pid})")
        with contextlib.suppress(StackError):
            self._run(
                [
                    str(find_pg_bin() / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(self.stop_timeout)),
                ],
                "stop",
                timeout=self.stop_timeout + 10,
            )
        terminate(pid, str(self.data_dir), 10.0)
        return True

    def purge(self) -> None:
        """Delete the cluster (stopped first), including a relocated folder, and its
        password. Never through a symlink we did not make (``shutil.rmtree`` refuses a
        symlink and does not follow the ones inside)."""
        self.stop()
        root = self._checked_root()
        if self.home.is_symlink():
            self.home.unlink()
        if root.exists():
            _refuse_symlink(root)
            shutil.rmtree(root, ignore_errors=True)
        self.password_file.unlink(missing_ok=True)


def _refuse_symlink(path: Path) -> None:
    """Raise StackError when ``path`` is a symlink (or anything but a folder)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "not a folder"
        raise StackError(f"refusing to use {path}: it is {kind}; remove it")
