#!/usr/bin/env bash
# web/ci.sh checks the web UI: it installs the pinned npm packages,
# typechecks, runs the Node tests (among them the differential test of
# copy as curl against testdata/curl.json, which the Go test holds to
# replay.Curl), rebuilds the bundle and fails when the committed dist/
# differs from it. .ci/run runs it as one step. The browser tests are Go
# tests (web/uitest) and run with the others.
#
# Usage: web/ci.sh (from anywhere). Needs Node 20 or later with npm, and git.
set -euo pipefail

cd "$(dirname "$0")"

# fail and say.
# shellcheck source=../.ci/lib.sh
source ../.ci/lib.sh

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	fail "node and npm are needed (Node 20 or later)"
fi

say "npm ci"
npm ci --no-audit --no-fund --loglevel=warn

say "tsc --noEmit"
node_modules/.bin/tsc --noEmit -p .

say "node --test"
node build.mjs --tests
node --test --test-reporter=dot .test/*.test.js

say "the committed bundle is what npm run build writes"
npm run build --silent
changed=$(git status --porcelain -- dist)
if [[ -n $changed ]]; then
	fail "web/dist is stale: run (cd web && npm ci && npm run build) and commit web/dist:" "$changed"
fi
