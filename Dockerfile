# syntax=docker/dockerfile:1
# The modelhub image: the operator (`modelhub run`) and the loader init container (`modelhub load`) of every
# ModelVersion's Deployment. Runs as a non-root uid and works with a read-only root filesystem (the chart mounts an
# emptyDir at /tmp; nothing else is written).
#
# The base is pinned by digest for anyone who builds with a registry. Without one, hack/image.sh makes the same
# Debian release from Debian's packages (debootstrap) and tags it under this repository:tag, then builds with
# --build-arg BASE_IMAGE=docker.io/library/debian:bookworm-slim (a local image has no registry digest).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

FROM ${BASE_IMAGE} AS python
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

FROM python AS build
# Optional extras of the package, comma-separated: "s3" adds boto3 for s3:// artifact stores (a large dependency).
ARG EXTRAS=""
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
RUN python3 -m venv /opt/modelhub
# Dependencies first (a layer that only changes with pyproject.toml), then the package itself. A build behind a
# TLS-intercepting proxy passes its CA bundle as the secret `build-ca` (not kept in the image).
COPY pyproject.toml README.md /src/
RUN --mount=type=secret,id=build-ca if [ -f /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && python3 -c 'import tomllib; p = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
import os; extras = [e for e in os.environ.get("EXTRAS", "").split(",") if e]; \
print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' >/tmp/requirements.txt \
 && /opt/modelhub/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt
COPY operator /src/operator
RUN --mount=type=secret,id=build-ca if [ -f /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
 && /opt/modelhub/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
 && rm -rf /opt/modelhub/lib/python3*/site-packages/pip /opt/modelhub/bin/pip*

FROM python
COPY --from=build /opt/modelhub /opt/modelhub
ENV PATH=/opt/modelhub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
# A named user: kopf (getpass) and other tools look the uid up.
RUN groupadd --system --gid 65532 modelhub \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin modelhub
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["modelhub"]
CMD ["run"]
