# The operator image: /manager (the operator) and /annotator (run by annotation pods), static, non-root.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/manager ./cmd/manager && \
    CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/annotator ./cmd/annotator

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/manager /out/annotator /
USER 65532:65532
ENTRYPOINT ["/manager"]
