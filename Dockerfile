# The bertsearch command on CPU, for `docker compose run --rm bertsearch ...` (see docker-compose.yml).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# CPU-only torch first, from PyTorch's CPU index: the default wheel would add ~3 GB of CUDA libraries.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2"

COPY . /src
RUN pip install /src && rm -rf /src

# Elasticsearch holds the index; the folder keeps only the manifest naming it. Created here so a named volume
# mounted on it starts out owned by the unprivileged user.
RUN useradd --create-home --uid 1000 bertsearch && mkdir /index && chown bertsearch /index
USER bertsearch
WORKDIR /home/bertsearch
ENV BERTSEARCH_INDEX_DIR=/index

ENTRYPOINT ["bertsearch"]
CMD ["--help"]
