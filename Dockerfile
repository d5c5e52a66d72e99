# syntax=docker/dockerfile:1
# HourMM images: one multi-target Dockerfile, two runtime targets.
#
#   docker build --target binance_pricer    -t hourmm/binance_pricer .
#   docker build --target polymarket_trader -t hourmm/polymarket_trader .
#
# The entrypoints are exactly the commands `hourmm sim` starts as child processes
# (tests/test_compose.py checks this), so the simulation exercises what ships.
# No secret is baked in: credentials arrive at run time through env_file.

# ---------------------------------------------------------------- builder
# Compiles the Cython quant core into a wheel and collects wheels of every
# dependency, so the runtime stage needs neither a compiler nor the network.
FROM python:3.12-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY hourmm_core ./hourmm_core
COPY runners ./runners
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---------------------------------------------------------------- runtime base
FROM python:3.12-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels hourmm \
 && rm -rf /wheels
# hourmm_core.config reads its YAML defaults from <site-packages>/../configs
# (REPO_ROOT/configs); put the shipped, tuned defaults there.
COPY configs /tmp/configs
RUN cp -r /tmp/configs "$(python -c 'import hourmm_core.config as c; print(c.CONFIG_DIR)')" \
 && rm -rf /tmp/configs \
 && python -c "import hourmm_core, runners"
# Non-root user; /data holds the SQLite journal (named volume hourmm_journal).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin hourmm \
 && mkdir -p /data && chown hourmm:hourmm /data
USER hourmm
WORKDIR /home/hourmm

# ---------------------------------------------------------------- container A
FROM runtime AS binance_pricer
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import json, os, sys, urllib.request as u; h = json.load(u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HTTP_PORT', '8080'), timeout=4)); sys.exit(0 if h.get('healthy') else 1)"]
ENTRYPOINT ["python", "-m", "runners.binance_pricer"]

# ---------------------------------------------------------------- container B
FROM runtime AS polymarket_trader
EXPOSE 9000
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; t = os.environ.get('CONTROL_TOKEN'); r = u.Request('http://127.0.0.1:%s/status' % os.environ.get('CONTROL_PORT', '9000'), headers={'Authorization': 'Bearer ' + t} if t else {}); sys.exit(0 if u.urlopen(r, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "runners.polymarket_trader"]
