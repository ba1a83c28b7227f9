#!/bin/sh
# Headless MuJoCo rendering (sac.play --video without a display) needs an EGL library (Mesa's).
# Installs it with apt-get when it is missing and we may; otherwise says what to install.
if ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing libegl1 and Mesa's EGL driver for headless MuJoCo rendering"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri >/dev/null \
        && exit 0
fi
echo "note: no libEGL found; 'sac.play --video' of MuJoCo envs needs it (Debian/Ubuntu: apt-get install libegl1 libegl-mesa0)"
exit 0
