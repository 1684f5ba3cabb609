# shopstream: the CLI, the consumer daemons and the simulator in one image.
#   docker build -t shopstream .
#   docker run --rm shopstream --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shopstream ./shopstream
COPY schemas ./schemas
COPY producers ./producers
COPY consumers ./consumers
RUN pip install . \
    && useradd --create-home --uid 10001 shopstream

USER shopstream
WORKDIR /home/shopstream
# configured at run time, as everywhere: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL,
# DATABASE_URL (see docker-compose.yml)

ENTRYPOINT ["shopstream"]
CMD ["--help"]
