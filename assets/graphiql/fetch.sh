#!/usr/bin/env bash
# Fetches the third-party files of the GraphiQL page (served from the binary, see src/graphiql.rs)
# from the npm registry: pinned versions, each tarball checked against its pinned integrity hash,
# then every extracted file against SHA256SUMS. Needs npm, tar, base64, od, sha256sum/sha512sum.
#
#   assets/graphiql/fetch.sh           # re-fetch and verify (run after changing a version below)
#   assets/graphiql/fetch.sh --update  # write SHA256SUMS from what was fetched (after a bump)
#
# To bump a version: change it below, set its integrity to the registry's `dist.integrity`
# (`npm view PACKAGE@VERSION dist.integrity`), run with --update, review and commit the diff.
set -euo pipefail
cd "$(dirname "$0")"

# name@version  integrity (sha512, from the registry's package metadata)
PACKAGES=(
  "graphiql@4.1.2 sha512-rNlzQIAzm6i2KBXmVQWBgLvt0TloxFVB2d18bukvdsvjEuFDHsKx5IVOomL1W1o5WW+tE54+ioHb2AEKzO2cUg=="
  "react@18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ=="
  "react-dom@18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw=="
)

# package  file in the tarball  name here
FILES=(
  "graphiql package/graphiql.min.js graphiql.min.js"
  "graphiql package/graphiql.min.css graphiql.min.css"
  "graphiql package/LICENSE LICENSE-graphiql"
  "react package/umd/react.production.min.js react.production.min.js"
  "react package/LICENSE LICENSE-react"
  "react-dom package/umd/react-dom.production.min.js react-dom.production.min.js"
  "react-dom package/LICENSE LICENSE-react-dom"
)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for entry in "${PACKAGES[@]}"; do
  read -r spec integrity <<<"$entry"
  name="${spec%@*}"
  tarball="$(cd "$tmp" && npm pack --silent "$spec")"
  want="$(printf '%s' "${integrity#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"
  got="$(sha512sum "$tmp/$tarball" | cut -d' ' -f1)"
  if [ "$want" != "$got" ]; then
    echo "integrity mismatch for $spec: the tarball is not the pinned one" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  tar -xzf "$tmp/$tarball" -C "$tmp/$name"
  echo "fetched $spec"
done

for entry in "${FILES[@]}"; do
  read -r pkg from to <<<"$entry"
  cp "$tmp/$pkg/$from" "$to"
done

names=()
for entry in "${FILES[@]}"; do
  read -r _ _ to <<<"$entry"
  names+=("$to")
done
if [ "${1:-}" = "--update" ]; then
  sha256sum "${names[@]}" >SHA256SUMS
  echo "wrote SHA256SUMS"
fi
sha256sum --check --strict SHA256SUMS
