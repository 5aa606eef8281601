#!/usr/bin/env bash
# steps.sh STEP — the steps of a CI pipeline that bakes one golden image
# release per arch on separate runners, merges them, publishes the release
# to an S3 store and pushes it to a registry. The GitHub Actions workflow
# and the GitLab CI file beside it call these steps; imagebake's own tests
# run them too, as separate processes sharing only the registry and S3.
#
# Environment (all steps):
#   IMAGEBAKE       the imagebake binary (default: imagebake on PATH)
#   CONTROL_REPO    the control repository (URL or path)
#   RELEASE         X.Y.Z, the release to bake (tag vX.Y.Z of CONTROL_REPO)
#   STORE           s3://BUCKET/PREFIX: the release store (catalog, images)
#   AGENTS          the agent binaries store (s3://BUCKET/PREFIX, URL or dir)
#   REGISTRY_REPO   REGISTRY/REPO the images are pushed to
#   IMAGEBAKE_TRUSTED_KEYS  the public key the store's catalog is signed with
#                   (bake reads the catalog to check the number)
#   IMAGEBAKE_KEY   the minisign key that signs (publish step)
#   IMAGEBAKE_COSIGN_KEY, COSIGN_PASSWORD  optionally, a cosign key: the
#                   pushed release is signed and attested for cosign
#   AWS_*           the S3 endpoint and credentials, the AWS way
# Step-specific:
#   bake:  ARCH, and optionally CONTEXT (bake --context, where the base is)
#          and ADVISORIES (a security release: the advisories it fixes,
#          comma-separated, e.g. "DSA-5532-1,CVE-2023-5363"). Each runner
#          checks the release number against the store's catalog before it
#          pushes anything: a wrong number stops every runner, not publish.
#   merge: ARCHES, the release's arches ("amd64 arm64"): their per-arch
#          images are taken from REGISTRY_REPO; or PARTS, a directory holding
#          each runner's partial-ARCH/ folder (handed over as CI artifacts)
set -euo pipefail
IB=${IMAGEBAKE:-imagebake}
step=${1:?usage: steps.sh bake|merge|publish}
: "${CONTROL_REPO:?}" "${RELEASE:?}"
case $step in
bake) # one runner per arch; its image (tag X.Y.Z-ARCH) and partial manifest go to the registry
  : "${ARCH:?}" "${AGENTS:?}" "${REGISTRY_REPO:?}" "${STORE:?}"
  IMAGEBAKE_ADVISORIES=${ADVISORIES:-${IMAGEBAKE_ADVISORIES:-}} \
    "$IB" bake --repo "$CONTROL_REPO" --release "$RELEASE" --arch "$ARCH" \
    --store "$AGENTS" --catalog "$STORE" --context "${CONTEXT:-.}" --out "partial-$ARCH"
  part=(partial-"$ARCH"/*-"$RELEASE")
  "$IB" push "${part[0]}" "$REGISTRY_REPO"
  ;;
merge) # joins the per-arch bakes into the release, byte for byte one bake of all arches
  parts=()
  if [ -n "${PARTS:-}" ]; then
    shopt -s nullglob
    parts=("$PARTS"/partial-*/*-"$RELEASE")
    [ ${#parts[@]} -gt 0 ] || { echo "no partial-*/NAME-$RELEASE under $PARTS" >&2; exit 2; }
  else
    : "${ARCHES:?ARCHES (or PARTS) is needed}" "${REGISTRY_REPO:?}"
    for a in ${ARCHES//,/ }; do parts+=("$REGISTRY_REPO:$RELEASE-$a"); done
  fi
  "$IB" merge --out dist "${parts[@]}"
  ;;
publish) # into the S3 store's signed catalog, then to the registry (recorded in the catalog)
  : "${STORE:?}" "${REGISTRY_REPO:?}" "${IMAGEBAKE_KEY:?}"
  rel=(dist/*-"$RELEASE")
  "$IB" publish "${rel[0]}" --store "$STORE"
  "$IB" push "${rel[0]}" "$REGISTRY_REPO" --store "$STORE"
  ;;
*) echo "unknown step $step (want bake, merge or publish)" >&2; exit 2 ;;
esac
