# pxperf's container image: one static binary FROM scratch, run as a non-root
# user, with the archive on a volume and a health check through
# grpc.health.v1.
#
# Two ways to build it (README, "Release builds and the container image"):
#
#   From source, where the golang image can be pulled (the default target):
#     docker build -t pxperf --build-arg VERSION=v1.2.3 .
#
#   From a binary already built, GoReleaser's by default (target prebuilt;
#   the golang stage is not used, so nothing is pulled):
#     go tool -modfile=tools/go.mod goreleaser release --snapshot --clean
#     buildah bud --format docker --target prebuilt -t pxperf .
#     docker build --target prebuilt -t pxperf .
#   It takes the binary for the target's architecture (--platform
#   linux/arm64 for arm64); BINARY names any other static linux binary in
#   the build context.
#
# HEALTHCHECK is in Docker's image format only: buildah and podman need
# --format docker to keep it (they write OCI images otherwise).

ARG GO_VERSION=1.26

# --- build: compile from source -------------------------------------------
# On the build machine's platform, cross-compiling to the target's: no
# emulation for `docker buildx build --platform linux/arm64`.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit and buildah from --platform (else the builder's); empty,
# the go command's own default.
ARG TARGETOS
ARG TARGETARCH
# The version `pxperf version` prints; empty leaves it to the go command,
# which says (devel) without .git (.dockerignore leaves .git out).
ARG VERSION=
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
	go build -trimpath \
	-ldflags "-s -w -X github.com/pxperf/pxperf/internal/buildinfo.version=${VERSION}" \
	-o /out/pxperf ./cmd/pxperf

# --- runtime: what both images share --------------------------------------
FROM scratch AS runtime
# 65532:65532, distroless's "nonroot"; numeric, as scratch has no
# /etc/passwd to look a name up in.
USER 65532:65532
# The archive (--log-dir). WORKDIR after USER creates it owned by 65532
# (BuildKit and buildah do; scratch has no mkdir to RUN), so the server can
# write it, and a new named volume mounted there starts with that owner.
# Scratch has no /tmp: everything pxperf writes goes here.
WORKDIR /data
VOLUME /data
# gRPC, and the HTTP gateway (Connect, gRPC-Web, REST/JSON, the browser UI).
EXPOSE 50051 50080
ENTRYPOINT ["/pxperf"]
# Listen on every interface, not loopback as outside a container: the ports
# are published from outside. On 0.0.0.0 the gateway's Host check takes
# loopback names and any IP address; a host name users type
# (pxperf.example) needs --http-allowed-hosts. Arguments after the image
# name in `docker run` replace all of this, so repeat the listen flags.
CMD ["serve", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:50080", "--log-dir", "/data"]
# `pxperf health` asks grpc.health.v1 at 127.0.0.1:50051 (no token needed)
# and exits 0 when SERVING. With TLS on the gRPC port, override it, e.g.
# docker run --health-cmd '/pxperf health --tls-ca /certs/ca.pem' …
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
	CMD ["/pxperf", "health"]

# --- prebuilt: the image from a binary built outside ----------------------
FROM runtime AS prebuilt
# GoReleaser's binary for the target's architecture (--platform, else the
# builder's): dist/pxperf_linux_amd64_v1, dist/pxperf_linux_arm64_v8.0.
ARG TARGETARCH
ARG BINARY=dist/pxperf_linux_${TARGETARCH}*/pxperf
COPY ${BINARY} /pxperf

# --- source: the image from the build stage (the default target) ---------
FROM runtime AS source
COPY --from=build /out/pxperf /pxperf
