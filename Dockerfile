# syntax=docker/dockerfile:1
# Build: docker build -t zhengfa-gateway .
# Run:   docker run -e GATEWAY_DATABASE_URL=postgresql+psycopg://… -e GATEWAY_ISSUER=https://… \
#          -v /srv/gateway/keys:/var/lib/gateway/keys zhengfa-gateway

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY adapters ./adapters
# The sample agency systems, for `gateway demo` only: nothing on the serve path imports them.
COPY sandbox ./sandbox
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
RUN groupadd --system gateway && useradd --system --gid gateway --home /var/lib/gateway gateway \
 && mkdir -p /var/lib/gateway/keys && chown -R gateway:gateway /var/lib/gateway
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root policies /app/policies
COPY --chown=root:root migrations /app/migrations
COPY --chown=root:root adapters/agencies /app/agencies
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DATA_DIR=/var/lib/gateway \
    GATEWAY_POLICY_DIR=/app/policies \
    GATEWAY_MIGRATIONS_DIR=/app/migrations \
    GATEWAY_AGENCIES_DIR=/app/agencies \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
USER gateway
WORKDIR /var/lib/gateway
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["gateway"]
CMD ["serve"]
