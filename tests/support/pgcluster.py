"""pgcluster.py - throwaway PostgreSQL clusters for Python integration tests.

The Python twin of tests/support/pgtest.c: both drive scripts/pg-cluster.sh, so the cluster
recipe (initdb in a temp dir, a free port, the unix socket in that dir, pg_stat_statements and
auto_explain preloaded) exists once. Standard library only.

    from pgcluster import PgCluster
    with PgCluster(listen="127.0.0.2,127.0.0.3") as pg:
        print(pg.sql("postgres", "SELECT version()"))

Clusters are always removed: the with-block stops them, and every started cluster, temp dir and
background pgbench is also registered in a process-global list that is cleaned up at exit and
on SIGTERM/SIGHUP (then the signal is re-raised). For SIGKILL, the script's watcher stops a
cluster once the owning process is gone, and the first start of each process sweeps stale
clusters of dead owners under the harness temp root.
"""

import atexit
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time

SOURCE_DIR = os.environ.get("DBI_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCRIPT = os.environ.get("DBI_PG_CLUSTER_SCRIPT") or os.path.join(SOURCE_DIR, "scripts", "pg-cluster.sh")

_lock = threading.RLock()
_live = {}  # id -> object with _cleanup()
_owner = None  # pid that registered; forked children never clean up the parent's entries
_swept = False


class PgError(Exception):
    """A cluster could not be started, stopped or queried."""


def pgtest_root():
    """The harness temp root ($DBI_PGTEST_ROOT, else $TMPDIR/dbi-pgtest), created if missing."""
    root = os.environ.get("DBI_PGTEST_ROOT") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "dbi-pgtest")
    try:
        os.mkdir(root, 0o777)
        os.chmod(root, 0o1777)  # sticky and world-writable, like /tmp
    except FileExistsError:
        pass
    return root


def _cleanup_all():
    with _lock:
        if _owner != os.getpid():
            return
        items = list(_live.values())
    # pgbench runs first (they talk to the clusters), then clusters and directories.
    items.sort(key=lambda o: 0 if isinstance(o, PgBench) else 1)
    for obj in items:
        try:
            obj._cleanup()
        except Exception as e:  # keep cleaning up the rest
            print("pgcluster: cleanup of %r failed: %s" % (obj, e), flush=True)


def _on_signal(signum, frame):
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _setup():
    global _owner, _swept
    with _lock:
        if _owner == os.getpid():
            return
        if _owner is not None:  # a forked child: the parent's entries are not ours
            _live.clear()
        else:
            atexit.register(_cleanup_all)
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGHUP):
                    if signal.getsignal(sig) == signal.SIG_DFL:
                        signal.signal(sig, _on_signal)
        _owner = os.getpid()
        _swept = False
    if not _swept:
        _swept = True
        subprocess.run([SCRIPT, "sweep", pgtest_root()], stdout=subprocess.DEVNULL, check=False)


def _register(obj):
    with _lock:
        _live[id(obj)] = obj


def _unregister(obj):
    with _lock:
        _live.pop(id(obj), None)


def _run_script(*args, capture=False):
    r = subprocess.run([SCRIPT] + [str(a) for a in args], stdout=subprocess.PIPE if capture else None,
                       text=True, check=False)
    if r.returncode != 0:
        raise PgError("pg-cluster.sh %s failed (exit %d)" % (" ".join(str(a) for a in args[:2]), r.returncode))
    return r.stdout


def _conninfo_quote(v):
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_add(conninfo, **kw):
    """Append key='value' pairs to a libpq conninfo string."""
    parts = [conninfo] if conninfo else []
    parts += ["%s=%s" % (k, _conninfo_quote(v)) for k, v in kw.items()]
    return " ".join(parts)


class TempDir:
    """A directory under the harness temp root, removed on exit/stop or by the sweep."""

    def __init__(self):
        _setup()
        self.path = tempfile.mkdtemp(prefix="tmp.", dir=pgtest_root())
        os.chmod(self.path, 0o755)
        with open(os.path.join(self.path, ".dbi-owner"), "w") as f:
            f.write("%d %s\n" % (os.getpid(), _starttime(os.getpid())))
        _register(self)

    def _cleanup(self):
        subprocess.run(["rm", "-rf", "--", self.path], check=False)
        _unregister(self)

    def remove(self):
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cleanup()
        return False


def make_certs(path, cn=None, san=None):
    """CA + server cert (SANs) + client cert (CN = role name) in path (pg-cluster.sh certs)."""
    args = ["certs", path]
    if cn:
        args += ["--cn", cn]
    if san:
        args += ["--san", san]
    _run_script(*args, capture=True)
    return path


def _starttime(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    return stat.rsplit(")", 1)[1].split()[19]


def _proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])  # state, ppid
    except (OSError, IndexError, ValueError):
        return None, None


def pids_alive(pids):
    """The PIDs of pids that still exist (zombies excluded)."""
    return [p for p in pids if _proc_stat(p)[0] not in (None, "Z", "X")]


def procs_in_dir(path):
    """PIDs whose working directory is inside path (postgres backends chdir to PGDATA)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % d)
        except OSError:
            continue
        if cwd.endswith(" (deleted)"):
            cwd = cwd[:-len(" (deleted)")]
        if cwd == path or cwd.startswith(path + "/"):
            out.append(int(d))
    return out


class PgBench:
    """A pgbench run in the background (own process group); wait() or kill() it."""

    def __init__(self, proc):
        self.proc = proc
        self.returncode = None
        _register(self)

    def wait(self, timeout=None):
        """Wait for pgbench; returns its exit code. Kills it (and raises) on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PgError("pgbench still running after %s s" % timeout)
        self._reap_group()
        _unregister(self)
        return self.returncode

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=2)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self._reap_group()
        try:
            self.returncode = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _unregister(self)

    def _reap_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    _cleanup = kill


class PgCluster:
    """A throwaway PostgreSQL cluster; `with PgCluster(**opts) as pg:` starts and removes it.

    Options: port (0 = free port), listen ("127.0.0.1"; "a,b,c" or a list), ssl_dir (certs
    from make_certs), auth / local_auth (pg_hba methods; default trust), password (of the
    superuser postgres), settings (dict or "key=value" list for postgresql.conf), hba (list of
    pg_hba.conf lines put before the defaults).

    After start: dir, host (socket dir), port, data, log, user, password, listen (list),
    tcp_host (first listen address), env (the variables pg-cluster.sh printed).
    """

    def __init__(self, port=0, listen=None, ssl_dir=None, auth=None, local_auth=None, password=None,
                 settings=None, hba=None):
        self.opts = dict(port=port, listen=listen, ssl_dir=ssl_dir, auth=auth, local_auth=local_auth,
                         password=password, settings=settings, hba=hba)
        self.dir = None
        self.env = {}
        self.running = False

    # --- lifecycle --------------------------------------------------------------------

    def start(self):
        _setup()
        o = self.opts
        self.dir = tempfile.mkdtemp(prefix="pg.", dir=pgtest_root())
        _register(self)
        args = ["start", self.dir, "--owner", os.getpid()]
        if o["port"]:
            args += ["--port", o["port"]]
        if o["listen"]:
            listen = o["listen"] if isinstance(o["listen"], str) else ",".join(o["listen"])
            args += ["--listen", listen]
        if o["ssl_dir"]:
            args += ["--ssl", o["ssl_dir"]]
        if o["auth"]:
            args += ["--auth", o["auth"]]
        if o["local_auth"]:
            args += ["--local-auth", o["local_auth"]]
        if o["password"] is not None:
            args += ["--password", o["password"]]
        settings = o["settings"] or []
        if isinstance(settings, dict):
            settings = ["%s=%s" % kv for kv in settings.items()]
        for s in settings:
            args += ["--set", s]
        for line in o["hba"] or []:
            args += ["--hba", line]
        try:
            out = _run_script(*args, capture=True)
        except BaseException:
            self.stop()
            raise
        for line in out.splitlines():
            words = shlex.split(line)
            if words and words[0] == "export":
                words = words[1:]
            for w in words:
                k, _, v = w.partition("=")
                self.env[k] = v
        self.host = self.env["PGHOST"]
        self.port = int(self.env["PGPORT"])
        self.data = self.env["PGDATA"]
        self.user = self.env["PGUSER"]
        self.password = self.env.get("PGPASSWORD")
        self.log = self.env["DBI_PG_LOG"]
        self.bindir = self.env["DBI_PG_BINDIR"]
        self.listen = [a.strip() for a in self.env["DBI_PG_LISTEN"].split(",") if a.strip()]
        first = self.listen[0] if self.listen else "127.0.0.1"
        self.tcp_host = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(first, first)
        self.running = True
        return self

    def stop(self):
        """Stop the server and remove the directory. Safe to call twice."""
        if self.dir:
            try:
                _run_script("stop", self.dir)
            finally:
                _unregister(self)
                self.running = False
                self.dir = None

    _cleanup = stop

    def stop_server(self):
        _run_script("stop-server", self.dir)
        self.running = False

    def start_server(self):
        _run_script("start-server", self.dir)
        self.running = True

    def restart(self):
        self.running = False
        _run_script("restart", self.dir)
        self.running = True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- clients ----------------------------------------------------------------------

    def conninfo(self, db="postgres", host=None, **extra):
        """libpq conninfo as the superuser: unix socket, or TCP to host; extra key=value pairs."""
        kw = dict(host=host or self.host, port=self.port, user=self.user, dbname=db, connect_timeout=10)
        if self.password:
            kw["password"] = self.password
        kw.update(extra)
        return conninfo_add("", **kw)

    def client_env(self):
        env = dict(os.environ)
        env.update(self.env)
        return env

    def psql(self, *args, conninfo=None, check=True, input=None):
        """Run psql -X with args (connected to conninfo, default the postgres db); CompletedProcess."""
        cmd = [os.path.join(self.bindir, "psql"), "-X", "-d", conninfo or self.conninfo()] + list(args)
        r = subprocess.run(cmd, env=self.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, input=input, timeout=300, check=False)
        if check and r.returncode != 0:
            raise PgError("psql failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
        return r

    def sql(self, db, query, host=None, conninfo=None, **extra):
        """Run query via psql; returns the rows as text (unaligned, tuples only, '|'-separated)."""
        ci = conninfo or self.conninfo(db, host, **extra)
        r = self.psql("-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query, conninfo=ci)
        return r.stdout.rstrip("\n")

    def rows(self, db, query, **kw):
        """Run query via psql; returns a list of tuples of strings (NULL as '')."""
        ci = kw.pop("conninfo", None) or self.conninfo(db, kw.pop("host", None), **kw)
        r = self.psql("-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-R", "\x1e", "-c", query,
                      conninfo=ci)
        out = r.stdout.rstrip("\n")
        return [tuple(rec.split("\x1f")) for rec in out.split("\x1e") if rec != ""]

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def server_pids(self):
        """PIDs of the postmaster (first) and its children; [] when not running."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return []
        if not pids_alive([pm]):
            return []
        kids = [int(d) for d in os.listdir("/proc") if d.isdigit() and _proc_stat(int(d))[1] == pm]
        return [pm] + kids

    # --- pgbench ----------------------------------------------------------------------

    def pgbench_init(self, db="postgres", scale=1, reinit=False):
        args = ["pgbench", self.dir, "--db", db, "--scale", scale]
        if reinit:
            args.append("--reinit")
        _run_script(*args)

    def _pgbench_cmd(self, db, scale, clients, jobs, seconds, args):
        return [SCRIPT, "pgbench", self.dir, "--db", db, "--scale", str(scale), "--",
                "-c", str(clients), "-j", str(jobs), "-T", str(seconds)] + [str(a) for a in args]

    def pgbench(self, db="postgres", clients=1, seconds=5, jobs=1, scale=1, args=()):
        """Run pgbench to completion (initialising the tables if missing); returns its output."""
        r = subprocess.run(self._pgbench_cmd(db, scale, clients, jobs, seconds, args), stdout=subprocess.PIPE,
                           text=True, timeout=seconds + 300, check=False)
        if r.returncode != 0:
            raise PgError("pgbench failed (exit %d)" % r.returncode)
        return r.stdout

    def pgbench_start(self, db="postgres", clients=1, seconds=5, jobs=1, scale=1, args=()):
        """Start pgbench in the background; returns a PgBench to wait() for or kill()."""
        proc = subprocess.Popen(self._pgbench_cmd(db, scale, clients, jobs, seconds, args),
                                stdout=subprocess.DEVNULL, start_new_session=True)
        return PgBench(proc)


def wait_until(pred, timeout=10.0, interval=0.1):
    """Poll pred() until it is true or timeout seconds pass; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)
