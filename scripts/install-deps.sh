#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages fracd's build and tests need, only those
# missing. Used by `make deps` (and so by `make test`/`make run`) and CI.
set -euo pipefail

# cgo libraries: OpenBLAS and oneDNN (classifier), OpenJPEG (JPEG 2000), CharLS (JPEG-LS), zlib (deflated DICOM).
# Tools the tests compare against: dcmtk (dcmdump, storescu/storescp, dsrdump),
# dicom3tools (dciodvfy), sqlite3.
packages=(gcc pkg-config libopenblas-dev libdnnl-dev libopenjp2-7-dev libcharls-dev zlib1g-dev dcmtk dicom3tools sqlite3)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
