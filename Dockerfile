# syntax=docker/dockerfile:1
# One image, one binary: `layerkeeper controller|agent|scan`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY main.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY nodeagent/ nodeagent/
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/layerkeeper .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/layerkeeper /layerkeeper
# The controller runs as nonroot; the agent's DaemonSet overrides runAsUser to 0 because it
# reads other containers' layers and /proc of the host.
USER 65532:65532
ENTRYPOINT ["/layerkeeper"]
