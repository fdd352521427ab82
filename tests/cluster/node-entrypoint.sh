#!/bin/sh
# Start this node's dockerd (see DOCKER.md's docker-in-docker facts): /sys and each
# cgroup v1 controller read-write (without it every task fails "mkdir
# /sys/fs/cgroup/cpuset/docker: read-only file system"), no pid files a killed
# node left behind, and a second socket in /node for the host.
set -eu
mount -o remount,rw /sys 2>/dev/null || true
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for controller in /sys/fs/cgroup/*; do
  [ -d "$controller" ] && mount -o remount,bind,rw "$controller" 2>/dev/null || true
done
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid /run/docker/containerd/containerd.pid
mkdir -p /node
exec dockerd --host=unix:///var/run/docker.sock --host="unix:///node/docker.sock" \
  --storage-driver=overlay2 "$@"
