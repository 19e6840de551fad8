# Container images of the server and the operator: `docker buildx bake` (from the repository root) builds both
# for linux/amd64 and linux/arm64. Override a variable from the environment, e.g.
#   REGISTRY=registry.example.com TAG=0.1.1 REVISION=$(git rev-parse HEAD) docker buildx bake --push
# Image names: ${REGISTRY}/ts-etcd/etcd:${TAG} (also :${ETCD_VERSION}) and ${REGISTRY}/ts-etcd/etcd-operator:${TAG}.

variable "REGISTRY" {
  default = "docker.io"
}

# Kept equal to package.json's version (a test checks it).
variable "TAG" {
  default = "0.1.0"
}

# The etcd version the server image is also tagged with: the operator names member images
# ${repository}:${spec.version} (spec.version defaults to this, operator/api/types.ts DEFAULT_VERSION).
variable "ETCD_VERSION" {
  default = "3.4.34"
}

# The Node.js 20 release of the base image (docker.io/library/node:${NODE_VERSION}-bookworm-slim).
variable "NODE_VERSION" {
  default = "20.20.2"
}

# The commit the images are built from (org.opencontainers.image.revision).
variable "REVISION" {
  default = "unknown"
}

# Where the source lives (org.opencontainers.image.source).
variable "SOURCE" {
  default = "https://github.com/ts-etcd/ts-etcd"
}

group "default" {
  targets = ["etcd", "operator"]
}

target "_common" {
  context   = "."
  platforms = ["linux/amd64", "linux/arm64"]
  args = {
    NODE_VERSION = "${NODE_VERSION}"
    VERSION      = "${TAG}"
    REVISION     = "${REVISION}"
    SOURCE       = "${SOURCE}"
  }
}

target "etcd" {
  inherits   = ["_common"]
  dockerfile = "images/etcd/Dockerfile"
  tags       = ["${REGISTRY}/ts-etcd/etcd:${TAG}", "${REGISTRY}/ts-etcd/etcd:${ETCD_VERSION}"]
}

target "operator" {
  inherits   = ["_common"]
  dockerfile = "images/operator/Dockerfile"
  tags       = ["${REGISTRY}/ts-etcd/etcd-operator:${TAG}"]
}
