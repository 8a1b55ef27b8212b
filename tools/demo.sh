#!/usr/bin/env bash
# The main job on a fresh machine (python3, g++, cmake): creates a virtualenv, builds and installs dtd, then
# explains the shipped MNIST model on the shipped digits and writes dtd-out/demo_mnist_dtd.png.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
echo "== building and installing dtd (C++ core + Python package; 1 to 3 minutes on 2 cores)"
"$VENV/bin/python" -m pip install -q .
"$VENV/bin/dtd" demo --out "${1:-dtd-out}"
