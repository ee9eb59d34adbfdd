# The Session <-> Matrix bridge. Data (config, registration, SQLite database) lives in /data.
#   docker build -t session-bridge .
#   docker run --rm -v $PWD/data:/data session-bridge     # first start: writes the config
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system bridge && useradd --system --gid bridge --home-dir /data bridge

WORKDIR /opt/bridge
# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir bridge && touch bridge/__init__.py && pip install . && pip uninstall -y session-matrix-bridge
# The source tree stays in place (editable install): the migrations in alembic/ and the
# commented config.example.yaml are read from beside the package.
COPY alembic.ini config.example.yaml ./
COPY alembic ./alembic
COPY bridge ./bridge
RUN pip install --no-deps -e . && python -c "import bridge.app"
COPY docker-run.sh /usr/local/bin/docker-run.sh
RUN chmod 0755 /usr/local/bin/docker-run.sh && mkdir -p /data && chown bridge:bridge /data

USER bridge
VOLUME /data
WORKDIR /data
EXPOSE 29340
ENTRYPOINT ["/usr/local/bin/docker-run.sh"]
