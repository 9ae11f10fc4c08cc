#!/usr/bin/env bash
# deploy/ci.sh checks the Grafana dashboard and the Prometheus alert rules
# in deploy/: every expression names a metric the server exports, and each
# rule fires and stays quiet where the monitor's alert does (see doc.go).
# deploy/ is a Go module of its own, so that the root module does not
# depend on Prometheus's server code; `go test ./...` at the root does not
# enter it, and .ci/run runs this as one step.
#
# Usage: deploy/ci.sh (from anywhere). Needs Go, and a C compiler for
# -race; staticcheck comes from the root's pinned tools (tools/go.mod).
set -euo pipefail

cd "$(dirname "$0")"

# fail and say.
# shellcheck source=../.ci/lib.sh
source ../.ci/lib.sh

say "go mod download"
go mod download

say "go mod tidy -diff"
go mod tidy -diff

say "go vet ./..."
go vet ./...

say "staticcheck ./..."
go tool -modfile=../tools/go.mod staticcheck ./...

say "go test -race -count=1 ./..."
go test -race -count=1 ./...
