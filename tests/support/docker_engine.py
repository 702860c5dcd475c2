"""A private Docker engine for the image test, and the project's image built on it.

Nothing of a Docker installation the host may have is used or changed:

* ``PrivateDockerd`` runs its own ``dockerd`` with its data root, exec root, pid file and
  socket in a temporary directory, no bridge, no iptables/ip6tables rules and no masquerading;
  containers and builds use the host's network namespace (loopback), so the host's network is
  left as it was. Stopping it removes the directory (images, containers, layers).
* The base image is a minimal Debian (``debootstrap --variant=minbase``) with Python from
  Debian's packages, fetched from the Debian mirror this machine's apt is configured for (no
  registry needed), imported with ``docker import``. The root filesystem tarball is cached in
  ``$PRETRADE_IMAGE_CACHE`` (default ``~/.cache/pretrade-guard``) between local runs.
* The build installs the runtime lock from a wheel directory that the host's own pip
  downloads (whatever index this machine's pip is configured for) and serves on loopback for
  the build only: ``--build-arg PIP_NO_INDEX=1 PIP_FIND_LINKS=http://127.0.0.1:PORT/``, which
  the Dockerfile keeps in its builder stage.

Starting dockerd, debootstrap and docker need root: without it every command runs through
``sudo -n`` (no password prompt).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from tests.support.processes import REPO_ROOT

#: Lines for the end of the test run's terminal summary (tests/conftest.py prints them): the
#: image size and how long the image step took, for the CI log.
SUMMARY: list[str] = []

#: Commands the image test needs (Debian packages docker.io and debootstrap).
REQUIRED_TOOLS = ("docker", "dockerd", "debootstrap")
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

#: Debian packages of the base image: Python, venv support (ensurepip) and a `python` command.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
#: What the base image does not need: package caches and lists, documentation, translations.
BASE_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
BASE_TRIM_CONTENTS = ("usr/share/locale", "usr/share/info")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"

DOCKERD_START_TIMEOUT_S = 60.0
DOCKERD_STOP_TIMEOUT_S = 30.0
DEBOOTSTRAP_TIMEOUT_S = 900.0
BUILD_TIMEOUT_S = 600.0
COMMAND_TIMEOUT_S = 120.0


def in_ci() -> bool:
    """CI sets CI=true (.ci/run does too); there the image test must run, never skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=_SBIN_PATH) is None]


def privileged() -> list[str]:
    """The prefix that runs a command as root: nothing for root, else ``sudo -n``."""
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def can_run_as_root() -> bool:
    if os.geteuid() == 0:
        return True
    if shutil.which("sudo") is None:
        return False
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def run(
    argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_S, stdout: IO[bytes] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a command as root; a failure raises with its output (for the test's message)."""
    result = subprocess.run(
        [*privileged(), *argv],
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.STDOUT if stdout is None else subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout or b"") + (result.stderr or b"")
        raise RuntimeError(
            f"{' '.join(argv[:4])} ... failed (exit {result.returncode}):\n"
            + output.decode(errors="replace")[-4000:]
        )
    return result


# --- the private dockerd ------------------------------------------------------------------


def _mounts_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


@dataclass
class PrivateDockerd:
    """One dockerd of our own; ``docker(...)`` talks to it and to nothing else."""

    root: Path
    name: str = field(default_factory=lambda: f"pgtest-{uuid.uuid4().hex[:10]}")
    proc: subprocess.Popen[bytes] | None = None
    _created_run_dirs: list[Path] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    def docker_argv(self, *args: str) -> list[str]:
        # DOCKER_BUILDKIT=0: the classic builder needs no registry (BuildKit would fetch the
        # Dockerfile's `# syntax=` frontend image); --config: no host CLI contexts or auths.
        return [
            "env",
            "DOCKER_BUILDKIT=0",
            "docker",
            "--config",
            str(self.root / "cli"),
            "--host",
            f"unix://{self.socket}",
            *args,
        ]

    def docker(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S, stdout: IO[bytes] | None = None
    ) -> str:
        result = run(self.docker_argv(*args), timeout=timeout, stdout=stdout)
        return (result.stdout or b"").decode(errors="replace").strip() if stdout is None else ""

    def start(self) -> None:
        for sub in ("data", "exec", "cli"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._created_run_dirs = [
            p for p in (Path("/run/docker"), Path("/run/containerd")) if not p.exists()
        ]
        argv = [
            *privileged(),
            "dockerd",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.root / "exec"),
            "--pidfile",
            str(self.root / "dockerd.pid"),
            "--host",
            f"unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            # Own containerd namespaces: a containerd the host already runs is shared safely.
            "--containerd-namespace",
            self.name,
            "--containerd-plugins-namespace",
            f"{self.name}-plugins",
        ]
        log = (self.root / "dockerd.log").open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log()}")
            probe = subprocess.run(
                [*privileged(), *self.docker_argv("version", "--format", "{{.Server.Version}}")],
                capture_output=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer within the deadline:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        path = self.root / "dockerd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop dockerd (it stops its containers and containerd), then remove everything."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            subprocess.run([*privileged(), "kill", "-TERM", str(proc.pid)], check=False)
            try:
                proc.wait(DOCKERD_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                # Its whole process group (dockerd started it in a session of its own).
                subprocess.run([*privileged(), "kill", "-KILL", f"-{proc.pid}"], check=False)
                proc.wait()
        for point in _mounts_under(self.root):  # netns, overlay mounts a killed dockerd left
            subprocess.run([*privileged(), "umount", "-l", point], check=False)
        subprocess.run([*privileged(), "rm", "-rf", str(self.root)], check=False)
        for created in self._created_run_dirs:  # empty directories dockerd makes under /run
            subprocess.run(
                [*privileged(), "find", str(created), "-depth", "-type", "d", "-empty", "-delete"],
                check=False,
                capture_output=True,
            )


# --- the Debian base image ---------------------------------------------------------------


def apt_source_lines() -> list[str]:
    paths = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        paths += sorted(p for p in sources_d.iterdir() if p.suffix in (".list", ".sources"))
    lines: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines


def debian_mirror(lines: Sequence[str]) -> str:
    """The first Debian archive (not the security one) in apt's sources, one-line or deb822."""
    for line in lines:
        text = line.split("#", 1)[0].strip()
        one_line = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)", text)
        uris = re.match(r"URIs:\s*(.+)", text, re.IGNORECASE)
        candidates = [one_line.group(1)] if one_line else uris.group(1).split() if uris else []
        for uri in candidates:
            if re.match(r"https?://", uri) and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def debian_suite() -> str:
    """This machine's Debian release (its mirror carries it), else bookworm."""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key == "VERSION_CODENAME" and value.strip('"'):
                return value.strip('"')
    return DEFAULT_SUITE


def cache_dir() -> Path:
    configured = os.environ.get("PRETRADE_IMAGE_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "pretrade-guard"
    base.mkdir(parents=True, exist_ok=True)
    return base


def debian_rootfs_tarball(work: Path) -> tuple[Path, bool]:
    """A tarball of a minimal Debian root with Python; (path, whether it came from the cache)."""
    mirror, suite = debian_mirror(apt_source_lines()), debian_suite()
    key = hashlib.sha256(f"{mirror} {suite} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()
    tarball = cache_dir() / f"debian-{suite}-python-{key[:12]}.tar"
    if tarball.is_file() and tarball.stat().st_size > 0:
        return tarball, True
    target = work / "rootfs"
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            suite,
            str(target),
            mirror,
        ],
        timeout=DEBOOTSTRAP_TIMEOUT_S,
    )
    run(["rm", "-rf", *(str(target / p) for p in BASE_TRIM)])
    for directory in BASE_TRIM_CONTENTS:
        run(["find", str(target / directory), "-mindepth", "1", "-delete"])
    partial = tarball.with_suffix(f".{os.getpid()}.partial")
    run(["tar", "--numeric-owner", "-C", str(target), "-cf", str(partial), "."], timeout=300)
    run(["rm", "-rf", str(target)])
    os.replace(partial, tarball)
    return tarball, False


# --- the build ---------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free loopback port while the block runs; its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def build_requirements() -> list[str]:
    """The build backend's requirements (pyproject.toml [build-system] requires)."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as fh:
        requires: list[str] = tomllib.load(fh)["build-system"]["requires"]
    return requires


def download_wheels(dest: Path) -> None:
    """The runtime lock and the build backend as wheels, through this machine's pip config."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--only-binary=:all:",
            "--dest",
            str(dest),
            "-r",
            str(REPO_ROOT / "requirements" / "runtime.lock"),
            *build_requirements(),
        ],
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S * 3,
    )


@dataclass
class BuiltImage:
    tag: str
    base: str
    size_bytes: int
    base_from_cache: bool
    seconds_base: float
    seconds_build: float
    #: The loopback URL the build installed from: it must not be in the final image.
    wheel_url: str


def build_image(engine: PrivateDockerd, work: Path) -> BuiltImage:
    started = time.monotonic()
    tarball, cached = debian_rootfs_tarball(work)
    base = f"{engine.name}/debian-python:{debian_suite()}"
    engine.docker("import", "--change", 'CMD ["python3"]', str(tarball), base, timeout=300)
    seconds_base = time.monotonic() - started

    started = time.monotonic()
    wheels = work / "wheels"
    wheels.mkdir()
    download_wheels(wheels)
    tag = f"{engine.name}/pretrade-guard:test"
    log = work / "build.log"
    with serve_directory(wheels) as wheel_url, log.open("wb") as out:
        try:
            engine.docker(
                "build",
                "--network",
                "host",
                "--build-arg",
                f"PYTHON_IMAGE={base}",
                "--build-arg",
                "PIP_NO_INDEX=1",
                "--build-arg",
                f"PIP_FIND_LINKS={wheel_url}",
                "--tag",
                tag,
                str(REPO_ROOT),
                timeout=BUILD_TIMEOUT_S,
                stdout=out,
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from exc
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", tag))
    return BuiltImage(
        tag=tag,
        base=base,
        size_bytes=size,
        base_from_cache=cached,
        seconds_base=seconds_base,
        seconds_build=time.monotonic() - started,
        wheel_url=wheel_url,
    )


def contains_any(chunks: Iterator[bytes], needles: Sequence[bytes]) -> set[bytes]:
    """Which of ``needles`` occur in the concatenated ``chunks`` (also across chunk borders)."""
    overlap = max(map(len, needles)) - 1
    found: set[bytes] = set()
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found.update(n for n in needles if n in window)
        tail = window[-overlap:] if overlap else b""
    return found


def stream_stdout(argv: Sequence[str], chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The stdout of a root command, in chunks; raises if the command fails."""
    proc = subprocess.Popen(
        [*privileged(), *argv], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    with proc:
        while chunk := proc.stdout.read(chunk_size):
            yield chunk
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} failed with exit {proc.returncode}")


def make_tempdir() -> Path:
    """A short path (unix socket paths are limited to ~107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="pg-docker-", dir="/tmp"))
