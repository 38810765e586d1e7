# Image for the web, worker, beat and flower services of Strix Data Protection.
FROM python:3.11-slim-bookworm

# pg_dump/pg_restore 15 match the postgres:15 service in docker-compose.yml; zstd for operators.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 zstd \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 1000 --home /app strix \
    && mkdir -p /archives /app/backups /app/var/static \
    && chown -R strix /archives /app/backups /app/var \
    && DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput --skip-checks
USER strix
ENV DJANGO_SETTINGS_MODULE=strix.settings STRIX_INSTALL_DIR=/app STRIX_ARCHIVE_DIR=/archives
