# One image for every role (web, worker, beat, release); the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/app/var LOG_FORMAT=json
# DejaVu so the local provider's drawtext has a font; ffmpeg itself comes from the imageio-ffmpeg wheel.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sora_controller ./sora_controller
COPY jobs ./jobs
COPY segmentation ./segmentation
COPY rendering ./rendering
COPY realtime ./realtime
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install . && SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput -v 0 && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
# The web role: WEB_CONCURRENCY daphne processes (default 1; more need REDIS_URL) on ${PORT:-8000}.
CMD ["python", "-m", "sora_controller.web_processes", "--", "--proxy-headers"]
