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
# Dependencies first, from the lock file alone (every package at its version, each file
# checked against its hashes), so that a change to the code reuses this layer instead of
# installing them again.
COPY requirements.lock /src/
RUN /opt/ourvoice/bin/pip install ${PIP_INSTALL_OPTIONS} --find-links /wheelhouse \
      --require-hashes -r /src/requirements.lock
COPY pyproject.toml /src/
COPY shared/ /src/shared/
COPY services/ /src/services/
COPY ourvoice/ /src/ourvoice/
# The project alone, built by the locked setuptools installed above.
RUN /opt/ourvoice/bin/pip install ${PIP_INSTALL_OPTIONS} --no-deps --no-build-isolation /src

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
