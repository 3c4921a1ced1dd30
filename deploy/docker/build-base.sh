#!/bin/sh
# Builds the base image of every Parley image (BASE_IMAGE, default parley-base:bookworm):
# Debian DEBIAN_RELEASE (bookworm) made with `debootstrap --variant=minbase`, with its
# python3 (3.11), python3-venv and ca-certificates. Skipped when the image is present.
#
# The packages come from DEBIAN_MIRROR, by default the archive that apt on this machine
# fetches DEBIAN_RELEASE from (/etc/apt/sources.list and sources.list.d/). A dated snapshot
# of the archive as DEBIAN_MIRROR pins every package to that day; the archive's date is
# recorded in the image's label parley.debian.archive-date either way. Needs root.
set -eu

BUILDAH=${BUILDAH:-buildah --storage-driver vfs}
RELEASE=${DEBIAN_RELEASE:-bookworm}
IMAGE=${BASE_IMAGE:-parley-base:$RELEASE}
PACKAGES=python3,python3-venv,ca-certificates

# The first archive (URI) of a `deb` source for $RELEASE in apt's sources, one-line
# (*.list) or deb822 (*.sources) format.
apt_mirror() {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v r="$RELEASE" '$1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == r) print $i
        }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v r="$RELEASE" 'BEGIN { RS = "" } {
            types = ""; uris = ""; suites = ""; enabled = 1
            n = split($0, lines, "\n")
            for (i = 1; i <= n; i++) {
                line = lines[i]
                if (line ~ /^Types:/) types = " " substr(line, 7) " "
                else if (line ~ /^URIs:/) uris = substr(line, 6)
                else if (line ~ /^Suites:/) suites = " " substr(line, 8) " "
                else if (line ~ /^Enabled:[ \t]*no/) enabled = 0
            }
            gsub(/[ \t]+/, " ", types); gsub(/[ \t]+/, " ", suites)
            if (enabled && types ~ / deb / && suites ~ (" " r " ")) { split(uris, u, " "); print u[1] }
        }' "$f"
    done
}

if $BUILDAH inspect --type image "$IMAGE" >/dev/null 2>&1; then
    echo "base image $IMAGE: present"
    exit 0
fi
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}
if [ -z "$MIRROR" ]; then
    echo "no Debian archive for $RELEASE in /etc/apt/sources.list*: set DEBIAN_MIRROR" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "building $IMAGE needs root (debootstrap)" >&2
    exit 1
fi

start=$(date +%s)
$BUILDAH rm parley-base-build >/dev/null 2>&1 || true  # left by an interrupted build
ctr=$($BUILDAH from --name parley-base-build scratch)
trap '$BUILDAH rm "$ctr" >/dev/null 2>&1 || true' EXIT
trap 'exit 1' HUP INT TERM PIPE
root=$($BUILDAH mount "$ctr")
echo "base image $IMAGE: debootstrap $RELEASE (minbase, $PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$RELEASE" "$root" "$MIRROR" >/dev/null

archive_date=$(sed -n 's/^Date: //p' "$root"/var/lib/apt/lists/*_dists_"$RELEASE"_*Release 2>/dev/null | head -n 1)
# Slim: no package lists, downloaded packages, manuals or translations (copyright files
# stay); later installs (the service images' libraries) leave them out too.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/log/bootstrap.log
find "$root"/usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
find "$root"/usr/share/doc -mindepth 1 -type d -empty -delete
cat >"$root"/etc/dpkg/dpkg.cfg.d/parley-slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
cat >"$root"/etc/apt/apt.conf.d/parley-slim <<'CFG'
APT::Install-Recommends "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };
CFG
$BUILDAH umount "$ctr" >/dev/null

$BUILDAH config \
    --env LANG=C.UTF-8 \
    --cmd /bin/bash \
    --label org.opencontainers.image.title="$IMAGE" \
    --label org.opencontainers.image.description="Debian $RELEASE (minbase) with python3 and python3-venv" \
    --label parley.debian.release="$RELEASE" \
    --label parley.debian.archive-date="$archive_date" \
    "$ctr"
$BUILDAH commit --quiet "$ctr" "$IMAGE" >/dev/null
echo "base image $IMAGE: built in $(($(date +%s) - start)) s (Debian $RELEASE archive of $archive_date)"
