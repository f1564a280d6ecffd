# One image for every iac-ci function on AWS: each Lambda function (IAC_CI_FUNCTION picks which)
# and the CodeBuild project that runs codebuild orders. See docs/deploy.md.
#
#   docker build --platform linux/amd64 --build-arg VERSION=$(git describe --always) -t iac-ci .
#
# Orders run their commands with sh in this image (lambda orders in the worker function,
# codebuild orders in CodeBuild), so it carries what every order needs: sh, git and CA
# certificates. Teams add the tools their commands call by building on it, for example:
#
#   FROM <account>.dkr.ecr.<region>.amazonaws.com/iac-ci:<tag>
#   RUN apk add --no-cache opentofu ansible
#
# and deploying that image instead (infra/02-deploy takes the image URI).

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

# The binary is cross-compiled on the build machine's platform: it is pure Go (CGO_ENABLED=0:
# SQLite, SOPS and age included), so it runs on any Linux of the target architecture.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/iac-ci/iac-ci/cli.Version=$VERSION" -o /iac-ci ./cmd/iac-ci

FROM alpine:${ALPINE_VERSION}
# sh comes with the base (busybox); git clones git sources at intake and in the commands.
RUN apk add --no-cache git ca-certificates
# Run as root, iac-ci runs orders' commands as this user (docs/security.md).
RUN adduser -S -D -H -h /nonexistent iac-ci-order
COPY --from=build /iac-ci /usr/local/bin/iac-ci
# Lambda runs ENTRYPOINT + CMD: `iac-ci lambda` speaks the Lambda Runtime API itself
# (aws-lambda-go), so the image needs no runtime interface client. CodeBuild starts its own
# agent in the container and runs the buildspec's commands (`iac-ci worker`) with sh, so neither
# is in its way. `docker run IMAGE version` runs any other command.
ENTRYPOINT ["/usr/local/bin/iac-ci"]
CMD ["lambda"]
