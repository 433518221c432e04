# voxhost on CPU, with the embedded models (Whisper tiny.en and base, the Piper voice, Kokoro): it serves
# with no network at all once built.
#   docker build -t voxhost .
#   docker run -p 8000:8000 -p 10300:10300 -e VOXHOST_API_KEY=change-me -e VOXHOST_WYOMING_OPEN=true \
#     -v voxhost-cache:/cache -v voxhost-data:/data voxhost
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[all]" && rm -rf /src

RUN useradd --system --create-home --uid 10001 voxhost && mkdir /cache /data && chown voxhost /cache /data
USER voxhost
WORKDIR /home/voxhost

# In a container the ports must be reachable from outside it: bind every interface. Set an API key
# (VOXHOST_API_KEY) unless only trusted machines reach the published ports; with a key set, Wyoming
# beyond loopback also needs VOXHOST_WYOMING_OPEN=true (the Wyoming protocol has no authentication).
ENV VOXHOST_HOST=0.0.0.0 \
    VOXHOST_WYOMING_URI=tcp://0.0.0.0:10300 \
    VOXHOST_CACHE_DIR=/cache \
    VOXHOST_DATA_DIR=/data \
    VOXHOST_MODELS=tiny.en,en_US-joe-medium
# /data: transcription jobs (their database, audio and results); a volume, so that they outlive the container
VOLUME /cache /data
EXPOSE 8000 10300

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"
# voxhost drains on the first SIGTERM (503 for new requests, in-flight ones finish within 30 s):
# give `docker stop` longer than that (docker stop -t 40).
STOPSIGNAL SIGTERM
ENTRYPOINT ["voxhost", "serve"]
