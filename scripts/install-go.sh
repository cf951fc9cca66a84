#!/usr/bin/env bash
# Install Debian's Go toolchain and the Go packages the Go client is built with, if
# missing (`make go`, which `make test` runs): the build is offline, in GOPATH mode
# over /usr/share/gocode. Needs root (apt-get).
#
# github.com/golang/protobuf must be the 1.5 package: grpc-go 1.33's internal/status
# does not compile against 1.3's ptypes (its Any is not anypb.Any).
set -euo pipefail
packages=(golang-go golang-google-protobuf-dev golang-google-grpc-dev golang-google-genproto-dev
  golang-github-golang-protobuf-1-5-dev protoc-gen-go protoc-gen-go-grpc)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
echo "go: installed ${missing[*]}"
