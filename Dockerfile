# spanledger serve: OTLP/HTTP ingest, JSON API and dashboard on port 4318.
# Build: docker build -t spanledger .   Run: see docker-compose.yml
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPANLEDGER_STORE=chdb:///var/lib/spanledger/data \
    SPANLEDGER_SPOOL_DIR=/var/lib/spanledger/spool
COPY --from=build /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/spanledger-*.whl)[serve]" \
    && rm -rf /dist \
    && useradd --system --uid 10001 --home-dir /var/lib/spanledger spanledger \
    && mkdir -p /var/lib/spanledger \
    && chown spanledger /var/lib/spanledger
USER spanledger
WORKDIR /var/lib/spanledger
VOLUME ["/var/lib/spanledger"]
EXPOSE 4318
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4318/healthz', timeout=2)"]
ENTRYPOINT ["spanledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4318"]
