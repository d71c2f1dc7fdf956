#!/usr/bin/env bash
# What the deployment tests need before they start: a Docker engine and Compose from
# Debian's packages, and every image made on this machine, since no image registry is
# assumed to be reachable:
#   - a Debian root with Python (debootstrap), imported as an image: the BASE_IMAGE of the
#     project's Dockerfile, and the base of PostgreSQL's;
#   - a Debian trixie root, the base of the broker: RabbitMQ 4 is packaged from trixie on;
#   - RabbitMQ and PostgreSQL from Debian's packages, in place of the official images;
#   - the project's image, from a wheelhouse of the files requirements.lock names.
# Each image is kept under its tag (and Docker's build cache), so a second run takes
# seconds. If the engine cannot start, this fails and says so: the tests never pass
# without having run the stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/deploy

fail() { echo "test-deploy: $*" >&2; exit 1; }
setting() { sed -n "s/^$1=//p" "$here/test.env"; }
has_image() { docker image inspect "$1" >/dev/null 2>&1; }
step() { printf '== %s\n' "$*"; }
# docker build, quiet unless it fails.
build() {
  local log
  log=$(mktemp)
  docker build "$@" > "$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; fail "docker build $* failed"; }
  rm -f "$log"
}

[ "$(id -u)" = 0 ] || fail "must run as root: it installs packages and starts the Docker engine"

# -- packages ---------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# -- the engine -------------------------------------------------------------------------
engine_up() { docker info >/dev/null 2>&1; }
if ! engine_up && [ -d /run/systemd/system ]; then
  systemctl start docker >/dev/null 2>&1 || true
fi
if ! engine_up; then
  step "starting the Docker engine"
  log=/var/log/ourvoice-test-dockerd.log
  # Every test container uses the host's network, so the engine needs no bridge and
  # leaves the machine's firewall rules as they are. setsid: it outlives this run, so
  # the next one finds it (and its images) ready.
  setsid dockerd --bridge=none --iptables=false --ip-masq=false >"$log" 2>&1 < /dev/null &
  engine=$!
  for _ in $(seq 60); do
    engine_up && break
    kill -0 "$engine" 2>/dev/null || break  # it gave up: no point waiting
    sleep 1
  done
  if ! engine_up; then
    tail -n 20 "$log" >&2 || true
    fail "the Docker engine could not start on this machine (log: $log); the deployment was NOT tested"
  fi
fi
# The classic builder: it is what Debian's engine offers without the buildx plugin.
export DOCKER_BUILDKIT=0

# -- base images: Debian roots made with debootstrap -----------------------------------
# The mirror this machine's apt uses (never a security or third-party source).
mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's/^URIs: *\([^ ]*\).*/\1/p' | grep -v security | head -n 1 || true)
  if [ -z "$uri" ]; then
    uri=$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list 2>/dev/null |
          awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' || true)
  fi
  [ -n "$uri" ] || fail "no Debian mirror found in this machine's apt sources"
  echo "$uri"
}
# debian_image IMAGE SUITE [PACKAGE,...]: a minimal root of SUITE, imported as IMAGE.
debian_image() {
  local image=$1 suite=$2 include=${3:-} root
  has_image "$image" && return 0
  step "making $image with debootstrap ($suite)"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase ${include:+--include=$include} "$suite" "$root" "$(mirror)" \
    > "$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; fail "debootstrap $suite failed"; }
  rm -f "$root.log"
  # Installing a package into an image must never start its service (as in Debian's
  # own images): a RabbitMQ started during a build would reach for the host's ports.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  tar -C "$root" -c . | docker import --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$root"
  trap - EXIT
}
# The project's base: this machine's Debian with its Python (3.11 on bookworm, the
# Python the lock file is made for).
python_image=$(setting PYTHON_IMAGE)
debian_image "$python_image" "$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")" \
  python3,python3-venv
# The broker's base: RabbitMQ 4 (and the Erlang 27 it needs) is packaged from trixie on;
# bookworm's is 3.10.
broker_base_image=$(setting RABBITMQ_BASE_IMAGE)
debian_image "$broker_base_image" trixie

# -- RabbitMQ and PostgreSQL from Debian's packages --------------------------------------
build_service_image() {
  local image
  image=$(setting "$(echo "$1" | tr a-z A-Z)_IMAGE")
  step "building $image"
  build --network host --build-arg "BASE_IMAGE=$2" -t "$image" "$here/images/$1"
}
build_service_image rabbitmq "$broker_base_image"
build_service_image postgres "$python_image"

# -- the project's image ----------------------------------------------------------------
# The very files the lock file names (checked against its hashes), fetched with the
# project's own pip (which trusts this machine's certificates); the image installs from
# them alone.
wheels=deploy/wheelhouse
if [ "$(cat "$wheels/.made-from" 2>/dev/null)" != "$(sha256sum requirements.lock)" ]; then
  step "filling the wheelhouse from requirements.lock"
  rm -f "$wheels"/*.whl "$wheels"/*.tar.gz
  .venv/bin/pip download --quiet --require-hashes --only-binary=:all: --dest "$wheels" \
    -r requirements.lock > "$wheels.log" 2>&1 ||
    { grep -v "is ignored" "$wheels.log" >&2; fail "could not fill the wheelhouse"; }
  rm -f "$wheels.log"
  sha256sum requirements.lock > "$wheels/.made-from"
fi
ourvoice_image=$(setting OURVOICE_IMAGE)
step "building $ourvoice_image on $python_image"
build --network none --build-arg "BASE_IMAGE=$python_image" \
  --build-arg PIP_INSTALL_OPTIONS=--no-index -t "$ourvoice_image" .
size=$(docker image inspect -f '{{.Size}}' "$ourvoice_image")
echo "image $ourvoice_image: $(( (size + 500000) / 1000000 )) MB"
