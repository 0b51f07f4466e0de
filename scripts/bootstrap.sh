#!/usr/bin/env bash
# Bootstraps a fresh clone with only Node 20 and npm: pinned pnpm, frozen install, build.
# Idempotent and quick when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pnpm@$want with npm" >&2
  npm install --global --no-fund --no-audit "pnpm@$want" >&2
fi
if [ "${CI:-}" = "true" ] || [ ! -d node_modules ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  pnpm install --frozen-lockfile >&2
fi
pnpm -r --workspace-concurrency=1 build >&2
