#!/usr/bin/env bash
# Debian packages tailorgen uses. Installed when we are root; otherwise we say what to run.
# Without them tailorgen still works: the shop falls back to procedural silhouettes, and the
# tests that open HTML pages in a real browser, or compile a UNet, are skipped.
set -u
packages=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || packages+=(dataset-fashion-mnist)
command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null || packages+=(chromium-headless-shell)
# torch.compile (`tailorgen generate --compile`) builds its CPU kernels with a C++ compiler.
command -v c++ >/dev/null || packages+=(g++)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${packages[@]}" >/dev/null \
        || echo "warning: could not install ${packages[*]}; tailorgen falls back where it can" >&2
else
    echo "note: tailorgen works better with: sudo apt-get install ${packages[*]}" >&2
fi
exit 0
