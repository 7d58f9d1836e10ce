#!/usr/bin/env bash
# Runs every test of the solution on a fresh machine that has only the .NET 10 SDK.
# Installs what the tests need first (idempotent), then `dotnet test Aspire.sln`.
set -euo pipefail
cd "$(dirname "$0")"

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Browser tests drive Debian's Chromium (no browser downloads: the network only reaches registries).
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing Debian chromium for the browser tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

# The shared-quota tests start their own redis-server (Debian package) on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing Debian redis-server for the shared-quota tests"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
  # Where the package's init script started a system redis, stop it: the AppHost's own redis
  # resource binds 6379 and the tests start theirs on free ports.
  as_root service redis-server stop >/dev/null 2>&1 || true
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
# A test that hangs is killed after 5 minutes and named in the log (the blame collector), so a
# hang fails the run in minutes instead of holding CI until its own limit.
blame=(--blame-hang-timeout 5m --blame-hang-dump-type none)
dotnet test Aspire.sln --nologo --filter "Category!=Benchmark" "${blame[@]}" "$@" 2>&1 | tee "$log" || status=$?
# The benchmark harness's smoke runs, a step of their own (not unit tests; seconds long, numbers meaningless).
dotnet test Tests/Gateway.Tests --nologo --no-build --filter "Category=Benchmark" "${blame[@]}" "$@" 2>&1 | tee -a "$log" || status=$?

# One plain closing line summing every test assembly's result.
awk '/^(Passed|Failed)!/ {
       for (i = 1; i <= NF; i++) {
         if ($i == "Failed:")  failed  += $(i+1)
         if ($i == "Passed:")  passed  += $(i+1)
         if ($i == "Skipped:") skipped += $(i+1)
       }
     }
     END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped }' \
  <(sed 's/,//g' "$log")
exit "$status"
