# rollback-webhook image: `docker build -t rollback-webhook:0.1.0 .`
# Two stages: the build stage installs the package and its dependencies into a virtualenv; the
# runtime stage copies only that virtualenv onto the same slim base, so no compiler, header or
# build cache reaches the image that runs in the cluster.
# The base is pinned to the Python release the test suite runs on; pin it by digest as well
# (python:3.11.7-slim-bookworm@sha256:...) when you build a release.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Metadata first, then the code: editing webhook/ does not invalidate more layers than needed.
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="rollback-webhook" \
      org.opencontainers.image.description="Prometheus alerts in, safe audited rollbacks of Kubernetes Deployments out" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric USER.
# /var/lib/rollback-webhook holds the SQLite audit store when no volume is mounted there.
RUN groupadd --system --gid 10001 rollback \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin rollback \
    && mkdir -p /etc/rollback-webhook /var/lib/rollback-webhook \
    && chown 10001:10001 /var/lib/rollback-webhook
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/rollback-webhook
EXPOSE 8080
ENTRYPOINT ["rollback-webhook"]
CMD ["serve", "--config", "/etc/rollback-webhook/config.yaml"]
