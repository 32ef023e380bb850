#!/usr/bin/env bash
# Install the DFT codes the tests run: GPAW (plane waves, built from PyPI without
# MPI) into the virtual environment of PIP, and Quantum ESPRESSO from Debian
# (pw.x and its pseudopotentials in /usr/share/espresso/pseudo).
# Usage: tests/dft/install.sh .venv/bin/pip    (Debian packages need root)
set -euo pipefail
pip=${1:?usage: install.sh PATH/TO/pip}
here=$(cd "$(dirname "$0")" && pwd)
packages="libxc-dev libopenblas-dev libfftw3-dev quantum-espresso"
installed=$(dpkg-query -W -f='${Status} ${Package}\n' $packages 2>/dev/null \
    | grep -c "^install ok installed" || true)
if [ "$installed" -ne 4 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install.sh: as root, run: apt-get install $packages" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q $packages >/dev/null
fi
# pip keeps the built wheel in its cache: the ~1 min build happens once per machine
GPAW_CONFIG="$here/gpaw-siteconfig.py" OMP_NUM_THREADS=1 "$pip" install --quiet gpaw==26.7.0
