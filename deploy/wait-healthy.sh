#!/bin/sh
# Wait until every running container of a Compose project that has a health check is
# healthy, and say how long that took.
#   deploy/wait-healthy.sh [PROJECT] [TIMEOUT_SECONDS]
# Exits 1, naming the containers that are not healthy, when the time is up or a
# container stopped.
project=${1:-ourvoice}
timeout=${2:-300}
start=$(date +%s)
while :; do
  waiting=""
  ids=$(docker ps -q --filter "label=com.docker.compose.project=$project")
  if [ -z "$ids" ]; then
    waiting="(no running containers)"
  fi
  for id in $ids; do
    state=$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
    case "$state" in
      *" healthy" | *" none") ;;
      *) waiting="$waiting ${state#/}" ;;
    esac
  done
  # A container that exited with a failure (the one-shot setup, say) will not come back.
  failed=$(docker ps -a -q --filter "label=com.docker.compose.project=$project" --filter status=exited |
           xargs -r docker inspect -f '{{if ne .State.ExitCode 0}}{{.Name}} exited with {{.State.ExitCode}}{{end}}')
  if [ -n "$(echo "$failed" | tr -d '[:space:]')" ]; then
    echo "not healthy:$(echo "$failed" | tr '\n' ' ')" >&2
    exit 1
  fi
  elapsed=$(( $(date +%s) - start ))
  if [ -z "$waiting" ]; then
    echo "all healthy after ${elapsed}s"
    exit 0
  fi
  if [ "$elapsed" -ge "$timeout" ]; then
    echo "not healthy after ${timeout}s:$waiting" >&2
    exit 1
  fi
  sleep 1
done
