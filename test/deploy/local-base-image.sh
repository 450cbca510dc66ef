#!/usr/bin/env bash
# Makes the base images the Docker test builds the real Dockerfiles on, from THIS machine's Node: no image
# can be pulled here, so `node:26-alpine` is swapped through the NODE_IMAGE / NODE_BUILD_IMAGE build args.
#
#   blog-local/node:<hash>        Debian (debootstrap, minbase) + this machine's node, npm and Node headers,
#                                 the user `node` (uid 1000) as in the official images
#   blog-local/node-build:<hash>  the same + python3, make and g++ (better-sqlite3 compiles from source,
#                                 since its prebuilt binary cannot be downloaded here)
#
# This machine reaches the npm registry through a local certificate authority, so both images carry the
# host's CA bundle and NODE_EXTRA_CA_CERTS; that belongs to these test images only, never to the
# Dockerfiles. The tag is a hash of this script, node, npm and the CA bundle: a rerun finds the images and
# takes no time. Prints "<runtime image> <build image>" as its last line.
set -euo pipefail

ca_bundle=/etc/ssl/certs/ca-certificates.crt
node_bin=$(command -v node)
npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)
node_prefix=$(cd "$(dirname "$(readlink -f "$node_bin")")/.." && pwd)
headers=$node_prefix/include/node

hash=$(cat "$0" "$ca_bundle" <("$node_bin" --version) <(cat "$npm_dir/package.json") | sha256sum | cut -c1-12)
runtime=blog-local/node:$hash
build=blog-local/node-build:$hash

if docker image inspect "$runtime" "$build" > /dev/null 2>&1; then
  echo "$runtime $build"
  exit 0
fi

for tool in debootstrap docker; do
  command -v "$tool" > /dev/null || { echo "local-base-image: $tool is not installed" >&2; exit 1; }
done
[[ -f $headers/node.h ]] || { echo "local-base-image: no Node headers in $headers" >&2; exit 1; }

work=$(mktemp -d /var/tmp/blog-local-node.XXXXXX)
cleanup() {
  # debootstrap mounts /proc inside the new root while it works; never delete through a mount.
  umount "$work/rootfs/proc" 2> /dev/null || true
  umount "$work/rootfs/sys" 2> /dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

if ! docker image inspect "$runtime" > /dev/null 2>&1; then
  echo "local-base-image: debootstrap (Debian bookworm, minbase), once per hash" >&2
  # libatomic1: the official Node 26 binary links it, and minbase lacks it (the official images carry it).
  debootstrap --variant=minbase --include=libatomic1 bookworm "$work/rootfs" > "$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
  }
  umount "$work/rootfs/proc" 2> /dev/null || true
  root=$work/rootfs
  install -m 0755 "$node_bin" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  cp -a "$headers" "$root/usr/local/include/node"
  install -m 0644 "$ca_bundle" "$root/usr/local/share/host-ca-bundle.crt"
  echo 'node:x:1000:1000::/home/node:/bin/sh' >> "$root/etc/passwd"
  echo 'node:x:1000:' >> "$root/etc/group"
  echo 'node:!:20000::::::' >> "$root/etc/shadow"
  install -d -o 1000 -g 1000 "$root/home/node"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/host-ca-bundle.crt' \
      --change 'ENV npm_config_nodedir=/usr/local npm_config_update_notifier=false' \
      --change 'CMD ["node"]' \
      - "$runtime" > /dev/null
fi

echo "local-base-image: adding python3, make and g++ for the build image" >&2
mkdir -p "$work/toolchain"
cat > "$work/toolchain/Dockerfile" << EOF
FROM $runtime
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
EOF
docker build --network host -q -t "$build" "$work/toolchain" > /dev/null

echo "$runtime $build"
