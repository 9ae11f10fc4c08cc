#!/usr/bin/env bash
# client/python/ci.sh checks the Python client: it installs Debian's
# packages when they are missing (as root), checks that pxperf_client/_gen is
# what generate.sh makes from proto/, builds the server, and runs the tests
# (unit tests, and integration tests against `pxperf serve`: publish, a
# watch that resumes across a clean restart and a crash, list with a
# filter, a config change, the example). .ci/run runs it as one step.
#
# Usage: client/python/ci.sh (from anywhere). Needs Debian (bookworm) with
# apt-get, Go, and git. PXPERF_BIN, when set, names the server binary to
# test instead of building one.
set -euo pipefail

cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fail and say.
# shellcheck source=../../.ci/lib.sh
source "$root/.ci/lib.sh"

# Debian's interpreter: the packages below are installed for it, not for
# a python3 earlier on PATH (pyenv, a venv).
python=/usr/bin/python3

# protoc 3.21.12 and grpc_python_plugin 1.51.1 generate for the runtimes
# python3-protobuf 3.21.12 and python3-grpcio 1.51.1; libprotobuf-dev has
# the well-known types' .proto files protoc needs.
packages=(python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc libprotobuf-dev)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		say "apt-get install ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		say "not root (or no apt-get): skipping apt-get install of ${missing[*]}"
	fi
fi
[[ -x $python ]] || fail "$python is needed (Debian's python3)"
$python -c 'import grpc, google.protobuf' 2>/dev/null ||
	fail "$python cannot import grpc and google.protobuf: install python3-grpcio and python3-protobuf"
say "$($python --version), grpcio $($python -c 'import grpc; print(grpc.__version__)'), protobuf $($python -c 'import google.protobuf; print(google.protobuf.__version__)'), $(protoc --version)"

# Generate into a scratch directory and compare, as client/ts/ci.sh does.
say "pxperf_client/_gen is up to date (generate.sh)"
./generate.sh "$tmp/gen"
diff -r -x __pycache__ pxperf_client/_gen "$tmp/gen" ||
	fail "client/python/pxperf_client/_gen is stale: run client/python/generate.sh and commit the result"
untracked=$(git ls-files --others --exclude-standard -- pxperf_client/_gen)
if [[ -n $untracked ]]; then
	fail "generated files not added to git (git add them):" "$untracked"
fi

if [[ -z ${PXPERF_BIN:-} ]]; then
	say "go build ./cmd/pxperf"
	(cd "$root" && go build -o "$tmp/pxperf" ./cmd/pxperf)
	export PXPERF_BIN=$tmp/pxperf
fi

say "unittest (unit tests, integration tests against pxperf serve)"
PYTHONDONTWRITEBYTECODE=1 $python -m unittest discover -s tests -v 2>&1 | sed 's/^/      /'
