#!/usr/bin/env bash
# Debian packages the test run and the demo need: PostgreSQL, Redis, VictoriaMetrics
# (InfluxDB v2 line-protocol writes) and Prometheus (promtool). Installs only what is missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
# promtool checks the rules; flashmm demo runs the server (the same package)
{ command -v promtool && command -v prometheus; } >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)  # the Temporal UI test (headless)
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing system packages: ${need[*]} (run as root or install them)" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# apt may start services on their default ports; FlashMM runs its own on other ports
