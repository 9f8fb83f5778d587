# sync-watcher image: a venv built from hash-pinned dependencies, run as a non-root user under tini.
# State and the git clone live on a mounted volume (/var/lib/sync-watcher); the root filesystem can be
# read-only (HOME and TMPDIR point at /tmp, which the chart mounts as an emptyDir). No HEALTHCHECK:
# Kubernetes probes /healthz and /readyz.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY config/requirements.lock ./requirements.lock
RUN python -m venv /opt/sync-watcher \
 && /opt/sync-watcher/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY watcher ./watcher
# pip and setuptools only build the venv; the daemon never installs anything, so they stay behind.
RUN /opt/sync-watcher/bin/pip install --no-deps . \
 && /opt/sync-watcher/bin/sync-watcher --help > /dev/null \
 && /opt/sync-watcher/bin/python -m pip uninstall -y -q pip setuptools

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sync-watcher" \
      org.opencontainers.image.description="Watches Argo CD and a GitOps repo; reverts the commit that broke a sync" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sync-watcher/sync-watcher"
# git and ssh for the clone and the revert pushes; tini as PID 1 so SIGTERM reaches the daemon. Only what this
# adds is pinned: ca-certificates comes with the base (checked below), and a pin on it turns the base's next point
# release into a refused downgrade. dpkg leaves out what the daemon never reads or runs: docs, man pages and translations (as
# python:*-slim does), the C headers that come with git's perl, and git's server, mail and WebDAV helpers
# (git-daemon stays: `sync-watcher demo` serves its repo with it).
RUN printf 'path-exclude=%s\n' '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/locale/*' '/usr/share/info/*' \
      '/usr/lib/*/perl/5.*/CORE/*' /usr/lib/git-core/git-http-backend /usr/lib/git-core/git-http-fetch \
      /usr/lib/git-core/git-http-push /usr/lib/git-core/git-imap-send /usr/lib/git-core/git-shell \
      /usr/lib/git-core/scalar > /etc/dpkg/dpkg.cfg.d/sync-watcher-slim \
 && echo 'path-include=/usr/share/doc/*/copyright' >> /etc/dpkg/dpkg.cfg.d/sync-watcher-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* openssh-client=1:9.2* tini=0.19.* \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && test -s /etc/ssl/certs/ca-certificates.crt \
 && useradd --system --uid 10001 --gid 0 --home-dir /var/lib/sync-watcher --no-create-home sync-watcher \
 && mkdir -p /var/lib/sync-watcher \
 && chown 10001:0 /var/lib/sync-watcher \
 && chmod 0770 /var/lib/sync-watcher
COPY --from=build /opt/sync-watcher /opt/sync-watcher
ENV PATH=/opt/sync-watcher/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    WATCHER_LOG__FORMAT=json
USER 10001:0
WORKDIR /var/lib/sync-watcher
VOLUME ["/var/lib/sync-watcher"]
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--", "sync-watcher"]
CMD ["run"]
