#!/usr/bin/env bash
# The action's icd (action.yml):
#   install.sh key      the key of the icd this checkout builds (a digest of its sources)
#   install.sh install  the icd to run: the `icd` input's executable, or a release build
#                       of this checkout (cargo install), restored from the cache when
#                       the sources are the same
# Each writes its result to $GITHUB_OUTPUT (`key=`, `icd=`).
set -euo pipefail
checkout="${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set: run as a GitHub Action step}"
given="${ICD_ACTION_ICD:-}"

case "${1:-}" in
key)
    if [ -n "$given" ]; then
        key=given
    else
        # Names and contents of the sources the build reads, and the compiler.
        key="$(cd "$checkout" && {
            rustc --version 2>/dev/null || echo "no rustc"
            find Cargo.toml Cargo.lock build.rs cbindgen.toml src -type f -print0 |
                sort -z | xargs -0 sha256sum
        } | sha256sum | cut -c1-32)"
    fi
    echo "key=$key" >>"$GITHUB_OUTPUT"
    ;;
install)
    if [ -n "$given" ]; then
        if ! [ -f "$given" ] || ! [ -x "$given" ]; then
            echo "::error title=insecure-code-detector::the icd input is not an executable file: $given" >&2
            exit 2
        fi
        icd="$(realpath "$given")"
    else
        root="${RUNNER_TEMP:?}/icd-install"
        icd="$root/bin/icd"
        # Only a build the cache restored under this key is used; anything else in its
        # place (left by an earlier step) is removed and built anew.
        if [ "${ICD_ACTION_CACHE_HIT:-}" != true ] || ! [ -x "$icd" ]; then
            rm -rf -- "$root"
            cargo install --locked --path "$checkout" --bin icd --root "$root"
        fi
    fi
    "$icd" --version
    echo "icd=$icd" >>"$GITHUB_OUTPUT"
    ;;
*)
    echo "usage: install.sh key|install" >&2
    exit 2
    ;;
esac
