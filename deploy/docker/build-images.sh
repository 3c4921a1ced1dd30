#!/bin/sh
# Builds parley-<service>:TAG for each SERVICE given, from deploy/docker/Dockerfile with
# buildah (no Docker engine: vfs storage, chroot isolation), after the base image
# (build-base.sh, skipped when present); prints each build's time and the images' sizes.
#
#   deploy/docker/build-images.sh gateway conference     (`make image` passes every service)
#
# Environment: TAG (dev), BASE_IMAGE (parley-base:bookworm; another image, such as
# python:3.11-slim-bookworm, is used as it is), IMAGE_BUILD_FLAGS (more `buildah bud`
# options, e.g. --layers), HOST_CA_BUNDLE: the host's CA bundle, mounted read-only over the
# image's while build steps run, so that they trust what the host trusts (a TLS-inspecting
# proxy); empty: the image's own. Needs root.
set -eu
cd "$(dirname "$0")/../.."

BUILDAH=${BUILDAH:-buildah --storage-driver vfs}
TAG=${TAG:-dev}
BASE_IMAGE=${BASE_IMAGE:-parley-base:bookworm}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}

if [ $# -eq 0 ]; then
    echo "usage: $0 SERVICE... (folders of services/)" >&2
    exit 2
fi
for service; do
    if [ ! -f "services/$service/pyproject.toml" ]; then
        echo "no service '$service': services/$service/pyproject.toml does not exist" >&2
        exit 2
    fi
done

case $BASE_IMAGE in
    parley-base:*) BUILDAH=$BUILDAH BASE_IMAGE=$BASE_IMAGE deploy/docker/build-base.sh ;;
esac

ca_mount=
if [ -n "$HOST_CA_BUNDLE" ] && [ -f "$HOST_CA_BUNDLE" ]; then
    ca_mount="--volume $HOST_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"
fi

times=
for service; do
    image=parley-$service:$TAG
    echo "== $image"
    start=$(date +%s)
    # shellcheck disable=SC2086 # the flag variables are lists of words
    $BUILDAH bud --isolation chroot --file deploy/docker/Dockerfile \
        --build-arg BASE="$BASE_IMAGE" --build-arg SERVICE="$service" \
        $ca_mount ${IMAGE_BUILD_FLAGS:-} --tag "$image" .
    seconds=$(($(date +%s) - start))
    echo "== $image: built in $seconds s"
    times="$times$image $seconds
"
done

echo
printf '%-36s %8s %10s\n' image "build s" size
printf '%s' "$times" | while read -r image seconds; do
    size=$($BUILDAH images --format '{{.Size}}' "$image" | head -n 1)
    printf '%-36s %8s %10s\n' "$image" "$seconds" "$size"
done
