# syntax=docker/dockerfile:1
#
# Image for the cosched scheduler.
#   docker build -t cosched:latest .
# Needs BuildKit (the default builder in current Docker) for the cache mounts.

FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOTOOLCHAIN=local \
    GOFLAGS=-buildvcs=false

# Module download first, so source-only changes reuse this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH:-amd64} \
    go build -trimpath -ldflags "-s -w" -o /out/cosched ./cmd/cosched

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/cosched /cosched
USER 65532:65532
ENTRYPOINT ["/cosched"]
