# The Session <-> Matrix bridge, installed from its wheel. Data (config, registration, SQLite
# database) lives in /data.
#   docker build -t session-bridge .
#   docker run --rm -v "$PWD/data:/data" session-bridge       # first start: writes the config
#   docker run --rm -v "$PWD/data:/data" session-bridge -g    # after editing: the registration
#   docker run -d -v "$PWD/data:/data" -p 29340:29340 session-bridge

# --- build: the wheel, with the pinned build backend ----------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt ./
RUN pip install -c constraints.txt hatchling
COPY pyproject.toml README.md alembic.ini config.example.yaml ./
COPY alembic ./alembic
COPY bridge ./bridge
RUN pip wheel --no-deps --no-build-isolation -w /wheels .

# --- the image: the wheel and its dependencies at the versions of constraints.txt ----------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system bridge && useradd --system --gid bridge --home-dir /data bridge
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
# With the e2be extra (python-olm and the crypto libraries), so that `encryption.allow: true`
# works in the image; python-olm installs from a manylinux wheel, nothing is compiled.
RUN wheel=$(ls /tmp/wheels/*.whl) \
    && pip install -c /tmp/constraints.txt "${wheel}[e2be]" \
    && python -c "import olm, mautrix.crypto" \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && python -c "import bridge.app" \
    && mkdir -p /data && chown bridge:bridge /data

# Inside the container the bridge listens on every interface, whatever appservice.hostname
# says in the config (an environment override: the file is never edited for it).
ENV BRIDGE_APPSERVICE_HOSTNAME=0.0.0.0

USER bridge
VOLUME /data
WORKDIR /data
EXPOSE 29340
# The first start writes /data/config.yaml and stops (exit code 3); -g writes the registration;
# every later start migrates the database and runs the bridge.
ENTRYPOINT ["session-matrix-bridge", "-c", "/data/config.yaml", "-r", "/data/registration.yaml"]
