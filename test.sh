#!/usr/bin/env bash
# Runs every test of Attune on a fresh machine: installs what the tests need when it is missing, then
# `dotnet test`. Extra arguments go to dotnet test (for example --filter FullyQualifiedName~Sweep).
#   - the conformance peers (npm, pinned by tests/conformance/package-lock.json): tokenizers, Jinja, llama.cpp
#   - Debian's chromium, which the report test drives through Microsoft.Playwright
#   - Debian's postgresql, whose programs (initdb, pg_ctl) the shared-store tests use to start a throwaway cluster on
#     loopback (tests/Attune.Tests/TestPostgres.cs; ATTUNE_TEST_POSTGRES=postgresql://user@host:port/db uses a server of yours)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# npm ci when the installed peers are missing or older than the lock file.
peers=tests/conformance
if [ ! -f "$peers/node_modules/.package-lock.json" ] || [ "$peers/package-lock.json" -nt "$peers/node_modules/.package-lock.json" ]; then
  echo "test.sh: installing the conformance peers (npm ci)" >&2
  npm ci --prefix "$peers" --ignore-scripts --no-audit --no-fund
fi

if [ -z "${ATTUNE_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "test.sh: installing Debian's chromium (apt-get)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [ -z "${ATTUNE_TEST_POSTGRES:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "test.sh: installing Debian's postgresql (apt-get)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

exec dotnet test Attune.slnx "$@"
