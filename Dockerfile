# One image for the four services. Each container runs one of them with the command
# `make run` and the tests use: python -m services.<name> (the Compose file says which).
#
#   docker build -t ourvoice .                                   # from the package index
#   docker build --build-arg BASE_IMAGE=... --build-arg PIP_INSTALL_OPTIONS=--no-index .
#                                                                # from deploy/wheelhouse
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Extra pip options: "--no-index" installs from the wheels in deploy/wheelhouse alone,
# for machines that cannot reach the package index from inside a build.
ARG PIP_INSTALL_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/ourvoice
COPY deploy/wheelhouse/ /wheelhouse/
# Dependencies first, from pyproject.toml alone, so that a change to the code reuses
# this layer instead of installing them again.
COPY pyproject.toml /src/
RUN /opt/ourvoice/bin/pip install ${PIP_INSTALL_OPTIONS} --find-links /wheelhouse /src \
 && /opt/ourvoice/bin/pip uninstall --yes ourvoice
COPY shared/ /src/shared/
COPY services/ /src/services/
RUN /opt/ourvoice/bin/pip install ${PIP_INSTALL_OPTIONS} --find-links /wheelhouse --no-deps /src

# The image that runs: the base, the virtualenv and nothing that compiles.
FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ourvoice
COPY --from=build /opt/ourvoice /opt/ourvoice
COPY deploy/healthcheck.py /opt/ourvoice/healthcheck.py
ENV PATH=/opt/ourvoice/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Code and virtualenv stay root's: the services only read them.
USER ourvoice
WORKDIR /opt/ourvoice
CMD ["ourvoice", "--help"]
