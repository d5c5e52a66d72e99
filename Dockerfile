# syntax=docker/dockerfile:1
# HourMM images: one multi-target Dockerfile, two runtime targets.
#
#   docker build --target binance_pricer    -t hourmm/binance_pricer .
#   docker build --target polymarket_trader -t hourmm/polymarket_trader .
#
# The entrypoints are exactly the commands `hourmm sim` starts as child processes
# (tests/integration/test_compose.py checks this), so the simulation exercises what ships.
# No secret is baked in: settings arrive at run time through env_file, the wallet
# credentials through a read-only file mounted into container B only (docker-compose.yml).
#
# BASE: production builds FROM the official python:3.12-slim. Where Docker Hub is out of
# reach (CI), deploy/container-smoke builds a local Debian base image and passes
#   --build-arg BASE=localhost/hourmm-base:bookworm
# Both are Debian with `python`/`pip` on PATH; nothing below depends on which one it is.
ARG BASE=python:3.12-slim

# ---------------------------------------------------------------- builder
# Compiles the Cython quant core into a wheel and installs it with every dependency
# under /install, so the runtime stage needs neither a compiler nor the network and gets
# the whole installation as one layer (no wheel files left in the image).
FROM ${BASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# 1. wheels of every dependency and build requirement, from pyproject.toml alone: this
#    layer is reused until pyproject.toml changes (a code change downloads nothing).
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies'] + p['build-system']['requires']))" > /tmp/requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt
# 2. the project (compiles the Cython core) offline from those wheels, then installed under
#    /install/<the interpreter's prefix> (/usr/local on python:3.12-slim, a venv elsewhere).
COPY setup.py README.md ./
COPY hourmm_core ./hourmm_core
COPY runners ./runners
RUN pip wheel --no-cache-dir --no-index --find-links /wheels --wheel-dir /dist . \
 && pip install --no-cache-dir --no-index --find-links /dist --ignore-installed --no-warn-script-location \
      --prefix "/install$(python -c 'import sys; print(sys.prefix)')" hourmm

# ---------------------------------------------------------------- runtime base
FROM ${BASE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=builder /install/ /
# hourmm_core.config reads its YAML defaults from <site-packages>/../configs
# (REPO_ROOT/configs); put the shipped, tuned defaults there.
COPY configs /tmp/configs
RUN cp -r /tmp/configs "$(python -c 'import hourmm_core.config as c; print(c.CONFIG_DIR)')" \
 && rm -rf /tmp/configs \
 && python -c "import hourmm_core, runners"
# Health probe of both containers: exit 0 when /health (A) or /status (B) answers 200.
# A script, not a `python -c` one-liner: podman 4.3 behind docker-compose splits a
# health-check argument on spaces, which breaks one-liners (no argument here has a space).
COPY deploy/healthcheck /usr/local/bin/hourmm-healthcheck
RUN chmod 0755 /usr/local/bin/hourmm-healthcheck
# Non-root user; /data holds the SQLite journal (named volume hourmm_journal).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin hourmm \
 && mkdir -p /data && chown hourmm:hourmm /data
USER hourmm
WORKDIR /home/hourmm

# ---------------------------------------------------------------- container A
FROM runtime AS binance_pricer
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["hourmm-healthcheck", "pricer"]
ENTRYPOINT ["python", "-m", "runners.binance_pricer"]

# ---------------------------------------------------------------- container B
FROM runtime AS polymarket_trader
EXPOSE 9000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["hourmm-healthcheck", "trader"]
ENTRYPOINT ["python", "-m", "runners.polymarket_trader"]
