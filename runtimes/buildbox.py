"""Run pip for a runtime build unprivileged, in bubblewrap, seeing only its build folder.

Pure helper (no Django). A `BuildBox` is one build folder plus the command prefix that runs a
program there:

- bubblewrap (run by root, so it may bind folders root alone can reach) builds new mount, pid,
  ipc, uts and cgroup namespaces: an empty root with the host's /usr read-only, a few /etc
  entries for name resolution and TLS (resolv.conf, hosts, ssl, ca-certificates), the pip
  configuration files and every local path they name (find-links folders, file:// indexes,
  constraints, certificates), the Python installation that runs pip, all read-only; a private
  /tmp; the build folder, the only writable place (HOME and TMPDIR point into it);
- inside, `setpriv` drops to a fresh unprivileged uid/gid (no groups, no capabilities, not even
  in the bounding set, no_new_privs) before pip starts;
- the environment is empty except PATH, HOME, TMPDIR, LANG and the service's `PIP_*` settings;
  the service user's own pip.conf is copied into the box's HOME.

The network stays the host's (pip must reach the package index). The service's files (var/, the
database, the secret key, ~/.cache) are not in the box. Without bubblewrap or setpriv, or when
not running as root, `BuildBox.create` raises `BoxError`: builds never fall back to
running pip as the service user.
"""
from __future__ import annotations

import ast
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.process_driver import usr_links

BUILD_UID_BASE = 3_000_000          # build uids/gids: [BUILD_UID_BASE, BUILD_UID_BASE + BUILD_UID_SPAN)
BUILD_UID_SPAN = 1 << 20            # (the process driver's executions use 1_000_000 .. 2_048_575)
ETC_ENTRIES = ("resolv.conf", "hosts", "host.conf", "gai.conf", "nsswitch.conf", "ssl", "ca-certificates",
               "ca-certificates.conf", "localtime", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
               "python3", "python3.11", "mime.types", "protocols", "services")
PIP_GLOBAL_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf")
HOME = "home"
TMP = "tmp"


class BoxError(RuntimeError):
    """The box cannot be made here, or what ran in it left something unsafe (the message says why)."""


def _user_pip_configs() -> dict[str, Path]:
    """The service user's own pip.conf files by their place under HOME (pip reads them from
    HOME, which the box replaces)."""
    home = Path(os.path.expanduser("~"))
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    found = {".config/pip/pip.conf": xdg / "pip" / "pip.conf", ".pip/pip.conf": home / ".pip" / "pip.conf"}
    return {rel: p for rel, p in found.items() if p.is_file()}


def pip_environment() -> dict[str, str]:
    """The service's `PIP_*` settings (the package index mirror, find-links, certificates ...)."""
    return {k: v for k, v in os.environ.items() if k.startswith("PIP_")}


def pip_config_paths() -> list[Path]:
    """Local files and folders the effective pip configuration names (find-links folders, file://
    indexes, constraint files, certificates), so the box can show them read-only."""
    try:
        out = subprocess.run([sys.executable, "-I", "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=60, stdin=subprocess.DEVNULL, cwd="/").stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found: list[Path] = []
    for line in out.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        for token in str(value).split():
            if token.startswith("file://"):
                token = token[len("file://"):]
            if not token.startswith("/"):
                continue
            path = Path(os.path.normpath(token))
            if key.endswith("index-url") and path.name == "simple":
                path = path.parent      # a local PEP 503 index links to files beside simple/
            if path.exists():
                found.append(path)
    return found


@dataclass
class BuildBox:
    """One build folder (`root`, owned by `uid`) and how to run a program isolated in it."""

    root: Path
    uid: int
    ro_paths: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> "BuildBox":
        """Make the build folder `root` (which must not exist) for a fresh unprivileged uid.

        :raises BoxError: bubblewrap or setpriv is missing, or the service is not root.
        """
        missing = [tool for tool in ("bwrap", "setpriv") if not shutil.which(tool)]
        if missing:
            raise BoxError(
                f"{' and '.join(missing)} not installed: runtime builds run pip only inside an unprivileged "
                "bubblewrap sandbox (install bubblewrap and util-linux; see scripts/install-system.sh)")
        if os.geteuid() != 0:
            raise BoxError("runtime builds must be started as root, which hands pip to a fresh "
                                 "unprivileged uid inside bubblewrap")
        uid = BUILD_UID_BASE + secrets.randbelow(BUILD_UID_SPAN)
        root = Path(os.path.abspath(root))
        root.mkdir(mode=0o700)
        for sub in (HOME, TMP):
            (root / sub).mkdir(mode=0o700)
        for rel, src in _user_pip_configs().items():
            dest = root / HOME / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames, None]:
                os.lchown(os.path.join(dirpath, name) if name else dirpath, uid, uid)
        ro = [Path(p) for p in PIP_GLOBAL_CONFIGS if os.path.exists(p)]
        if os.environ.get("PIP_CONFIG_FILE") and os.path.isfile(os.environ["PIP_CONFIG_FILE"]):
            ro.append(Path(os.environ["PIP_CONFIG_FILE"]))
        # never a folder that holds the build folder (the service's cache, its home, /)
        ro += [p for p in pip_config_paths() if p not in root.parents]
        for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
            if not (prefix == "/usr" or prefix.startswith("/usr/")):
                ro.append(Path(prefix))
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(root / HOME), "TMPDIR": str(root / TMP),
               "LANG": "C.UTF-8", "USER": "build", "PYTHONDONTWRITEBYTECODE": "1", **pip_environment()}
        return cls(root=root, uid=uid, ro_paths=sorted(set(ro)), env=env)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run as the box's uid inside bubblewrap, cwd = the build folder."""
        args = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session", "--hostname", "build",
                "--ro-bind", "/usr", "/usr", *usr_links(),
                "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        made = {Path("/"), Path("/usr"), Path("/tmp"), Path("/proc"), Path("/dev")}

        def parents(dest: Path) -> list[str]:
            out: list[str] = []
            for p in reversed(dest.parents):
                if p not in made:
                    made.add(p)
                    out += ["--perms", "0755", "--dir", str(p)]
            return out

        for name in ETC_ENTRIES:
            src = Path("/etc") / name
            if src.exists() and src not in self.ro_paths:
                args += [*parents(src), "--ro-bind", str(src), str(src)]
                made.add(src)
        for p in self.ro_paths:
            args += [*parents(p), "--ro-bind", str(p), str(p)]
            made.add(p)
        args += [*parents(self.root), "--bind", str(self.root), str(self.root), "--chdir", str(self.root),
                 "--clearenv"]
        for k, v in self.env.items():
            args += ["--setenv", k, v]
        args += ["--cap-add", "CAP_SETUID,CAP_SETGID", "--",
                 "/usr/bin/setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *argv]
        return args

    def reclaim(self, path: Path) -> None:
        """Give everything under `path` (written in the box) back to root, refusing symlinks
        (pip never makes any when it installs wheels).

        :raises BoxError: a symlink was found.
        """
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [*dirnames, *filenames]:
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    raise BoxError(f"the build produced a symbolic link ({os.path.relpath(p, path)})")
                os.lchown(p, 0, 0)
            os.lchown(dirpath, 0, 0)
