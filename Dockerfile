# syntax=docker/dockerfile:1
#
# pretrade-guard image: the guard (`pretrade-guard`, default CMD) and the bundled
# exchange simulator (`pretrade-sim`) in one virtualenv, runtime deps only.
#
#   docker build -t pretrade-guard:local .
#   docker run --rm -p 8080:8080 -v "$PWD/deploy/demo:/config:ro" \
#     -e PRETRADE_GUARD_CONFIG=/config/guard.compose.yaml pretrade-guard:local
#
# Without a registry: --build-arg PYTHON_IMAGE=<a local Debian image with python3,
# python3-venv, python-is-python3> (README "Building the image"; the CI image test builds one
# with debootstrap) and, offline, DOCKER_BUILDKIT=0 (BuildKit fetches the syntax frontend).
#
# Both stages must use the same base so the venv's interpreter symlinks resolve.
# Pinned by tag; pin by digest (python:3.11-slim-trixie@sha256:...) where the
# registry is reachable to look it up.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---------------------------------------------------------------- builder stage
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

# Where pip finds packages: PyPI unless given, e.g. an index or a wheel directory served on
# the build host (`--network=host --build-arg PIP_NO_INDEX=1 --build-arg
# PIP_FIND_LINKS=http://127.0.0.1:8000/`, as the CI image test does). pip reads them as
# environment variables; they exist in this stage only, so the final image keeps no index URL.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_TRUSTED_HOST

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Dependencies first: this layer is rebuilt only when the lock changes.
# Every runtime dependency ships a manylinux wheel, so no compiler is needed.
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --no-cache-dir -r /tmp/runtime.lock

# Then the project itself, without resolving anything again.
WORKDIR /src
# README.m[d]: pyproject names README.md as the long description; the glob keeps
# the build working while it does not exist yet.
COPY pyproject.toml README.m[d] LICENSE ./
COPY app ./app
COPY simulator ./simulator
RUN pip install --no-cache-dir --no-deps .

# ------------------------------------------------------------------ final stage
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="pretrade-guard" \
      org.opencontainers.image.description="Answers 'may this account place this order now, and if not, why?'"

# Fixed uid/gid so volume ownership and Kubernetes runAsUser are predictable.
RUN groupadd --system --gid 10001 guard \
    && useradd --system --no-log-init --uid 10001 --gid guard \
       --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin guard \
    && install -d -o guard -g guard -m 0750 /var/lib/pretrade-guard

COPY --from=builder /opt/venv /opt/venv

# PRETRADE_GUARD_SERVER__* override the config file: inside a container the
# guard listens on all interfaces, on the port EXPOSE and HEALTHCHECK use, and
# keeps its database (kill switches, audit log) in the one writable directory:
# mount a volume there or engaged kill switches do not survive a new container.
# The code in /opt/venv stays root-owned and read-only for the service user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PRETRADE_GUARD_SERVER__HOST=0.0.0.0 \
    PRETRADE_GUARD_SERVER__PORT=8080 \
    PRETRADE_GUARD_SERVER__DATA_DIR=/var/lib/pretrade-guard

WORKDIR /var/lib/pretrade-guard
USER 10001:10001

EXPOSE 8080

# Liveness only (/readyz is the readiness signal). No curl in slim images, so
# python's urllib: open() raises on non-2xx and on connection errors -> exit 1.
# No proxy (an HTTP_PROXY in the environment must not swallow a loopback probe);
# the port follows PRETRADE_GUARD_SERVER__PORT so a re-ported container stays healthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('PRETRADE_GUARD_SERVER__PORT', '8080'), timeout=2)"]

# One process, one uvicorn worker: the program runs uvicorn itself and handles
# SIGTERM (docker stop) gracefully as PID 1, within server.graceful_shutdown_s
# (default 10 s, the same as docker stop's default grace: give it a little more,
# e.g. `docker stop -t 15` / compose stop_grace_period).
CMD ["pretrade-guard"]
