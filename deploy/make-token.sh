#!/bin/sh
# Makes a random bearer token, appends NAME ROLE SHA256 to deploy/tokens
# (the file the compose service reads as its tokens file) and prints the
# token once, on stdout: keep it, the server stores only its hash.
#   deploy/make-token.sh admin operator > deploy/admin.token
#   deploy/make-token.sh vision-jobs trainer team=vision
# Then start (or SIGHUP) the server: docs/security.md.
set -eu
name=${1:?usage: make-token.sh NAME ROLE [KEY=VALUE]}
role=${2:?usage: make-token.sh NAME ROLE [KEY=VALUE]}
selector=${3:-}
file=$(dirname "$0")/tokens
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
printf '%s %s %s %s\n' "$name" "$role" "$hash" "$selector" >> "$file"
# Hashes only; the server (uid 10001 in the container) must read it.
chmod 644 "$file"
printf '%s\n' "$token"
