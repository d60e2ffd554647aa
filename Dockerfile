# ccm-intake: the Celery worker, beat, the IDLE listener and the metrics (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# OCR for scanned PDFs in the Convention's working languages; antiword and catdoc read .doc files.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        tesseract-ocr tesseract-ocr-fra tesseract-ocr-spa antiword catdoc \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid so that volume ownership is predictable.
RUN groupadd --system --gid 10001 ccm \
    && useradd --system --uid 10001 --gid ccm --home-dir /var/lib/ccm \
        --no-create-home --shell /usr/sbin/nologin ccm \
    && mkdir -p /var/lib/ccm \
    && chown ccm:ccm /var/lib/ccm

# Only what the package needs: no tests, no venv, no local data in the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY parsers ./parsers
COPY config ./config
RUN pip install . && rm -rf /src
# The health checks of docker-compose.yml (standard library only).
COPY deploy/healthcheck.py /usr/local/bin/ccm-healthcheck
RUN chmod 0755 /usr/local/bin/ccm-healthcheck

# A new named volume mounted here starts as a copy of this directory, owned by ccm.
ENV CCM_DATA_DIR=/var/lib/ccm \
    CCM_LOG_FORMAT=auto
WORKDIR /var/lib/ccm
USER 10001:10001

CMD ["ccm-intake", "run"]
