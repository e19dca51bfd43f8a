#!/usr/bin/env bash
# Installs the Debian packages switchyard's tests and demo run for real (debootstrap: the
# base of the production image, see scripts/build-image.sh). As root it installs
# them; otherwise it prints the one command to run and fails.
set -euo pipefail
PACKAGES=(etcd-server etcd-client haproxy docker.io busybox-static debootstrap)
BINARIES=(etcd etcdctl haproxy dockerd busybox debootstrap)

missing=()
for i in "${!BINARIES[@]}"; do
  command -v "${BINARIES[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${BINARIES[$i]}" ] || missing+=("${PACKAGES[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "switchyard needs: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${PACKAGES[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
echo "installed: ${missing[*]}"
