#!/usr/bin/env bash
# The action's scan (action.yml): icd scan for the SARIF log, the Markdown job summary
# and the gate's status. With the prediction cache on (unless the settings say
# `cache = false`) the model runs once: the later runs answer from the cache
# ($RUNNER_TEMP/icd-cache, kept between jobs by actions/cache).
# Inputs come as ICD_ACTION_* variables; results go to $GITHUB_OUTPUT (`sarif`,
# `summary`, `status`: 0 no findings, 1 findings, under the `fail-on` policy).
set -euo pipefail
icd="${ICD:?the install step gave no icd}"
out="${RUNNER_TEMP:?RUNNER_TEMP is not set: run as a GitHub Action step}/icd"
mkdir -p "$out"
export ICD_CACHE_DIR="$RUNNER_TEMP/icd-cache"

fail() {
    echo "::error title=insecure-code-detector::$1" >&2
    exit 2
}

fail_on="${ICD_ACTION_FAIL_ON:-new}"
case "$fail_on" in
new | any | none) ;;
*) fail "fail-on is '$fail_on': expected new, any or none" ;;
esac
explain="${ICD_ACTION_EXPLAIN:-true}"
case "$explain" in
true | false) ;;
*) fail "explain is '$explain': expected true or false" ;;
esac
case "${ICD_ACTION_UPLOAD_SARIF:-true}" in
true | false) ;;
*) fail "upload-sarif is '${ICD_ACTION_UPLOAD_SARIF}': expected true or false" ;;
esac

global=()
if [ -n "${ICD_ACTION_MODEL:-}" ]; then global+=(--model "$ICD_ACTION_MODEL"); fi
if [ -n "${ICD_ACTION_CALIBRATION:-}" ]; then global+=(--calibration "$ICD_ACTION_CALIBRATION"); fi

# Whitespace-separated paths, newlines included.
paths=()
read -r -d '' -a paths <<<"${ICD_ACTION_PATHS:-.}" || true
if [ "${#paths[@]}" -eq 0 ]; then paths=(.); fi

scope="${ICD_ACTION_SCOPE:-}"
if [ -z "$scope" ]; then
    if [ -n "${GITHUB_BASE_REF:-}" ]; then scope=changed; else scope=all; fi
fi
config="${ICD_ACTION_CONFIG:-}"
triage="${ICD_ACTION_TRIAGE:-}"
scan=()
case "$scope" in
all) ;;
changed)
    if [ -z "${GITHUB_BASE_REF:-}" ]; then
        fail "scope changed needs a pull request's base branch (GITHUB_BASE_REF is empty)"
    fi
    # The pull request's base commit (the event's), fetched if the checkout lacks it;
    # without an event, the base branch as the remote has it now.
    base="${ICD_ACTION_BASE_SHA:-}"
    if [ -n "$base" ]; then
        if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
            git fetch -q --no-tags --depth=1 origin "$base"
        fi
    else
        base="refs/remotes/origin/$GITHUB_BASE_REF"
        git fetch -q --no-tags --depth=1 origin "+refs/heads/$GITHUB_BASE_REF:$base"
    fi
    scan+=(--changed-since "$base")
    # The base's settings and verdicts, not the pull request's: a change cannot move
    # its own gate or triage its own findings. The settings copy lies where the
    # original does, as its exclude globs are relative to it, under a new name
    # (mktemp), and is removed when the step ends.
    top="$(git rev-parse --show-toplevel)"
    is_file() { [ "$(git cat-file -t "$base:$1" 2>/dev/null)" = blob ]; }
    if [ -z "$config" ]; then
        if is_file .icd.toml; then
            config="$(mktemp -p "$top" .icd-base.XXXXXXXX)"
            trap 'rm -f -- "$config"' EXIT
            git cat-file blob "$base:.icd.toml" >"$config"
        else
            scan+=(--no-config)
        fi
    fi
    if [ -z "$triage" ]; then
        if is_file .icd-triage.toml; then
            triage="$out/base.icd-triage.toml"
            git cat-file blob "$base:.icd-triage.toml" >"$triage"
        else
            scan+=(--no-triage)
        fi
    fi
    ;;
*) fail "scope is '$scope': expected changed or all" ;;
esac
if [ -n "$config" ]; then scan+=(--config "$config"); fi
if [ -n "$triage" ]; then scan+=(--triage "$triage"); fi
if [ -n "${ICD_ACTION_THRESHOLD:-}" ]; then scan+=(--threshold "$ICD_ACTION_THRESHOLD"); fi
if [ "$explain" = true ]; then scan+=(--explain); fi
with_baseline=()
if [ -n "${ICD_ACTION_BASELINE:-}" ]; then with_baseline=(--baseline "$ICD_ACTION_BASELINE"); fi

# icd scan ARGS...; sets `status` (0 or 1), and stops the step on an error (2).
run() {
    status=0
    "$icd" "${global[@]}" scan "${scan[@]}" "$@" -- "${paths[@]}" || status=$?
    if [ "$status" -gt 1 ]; then
        fail "icd scan failed (exit status $status): see its message above"
    fi
}

run "${with_baseline[@]}" --format sarif -o "$out/icd.sarif"
new_status=$status
link_base="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:?}/blob/${GITHUB_SHA:?}/"
run "${with_baseline[@]}" --format markdown --link-base "$link_base" -o "$out/summary.md"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$out/summary.md" >>"$GITHUB_STEP_SUMMARY"; fi
gate_status=$new_status
if [ "$fail_on" = any ] && [ "${#with_baseline[@]}" -gt 0 ]; then
    # Every finding, those in the baseline too.
    run --format jsonl -o "$out/all.jsonl"
    gate_status=$status
fi
{
    echo "sarif=$out/icd.sarif"
    echo "summary=$out/summary.md"
    echo "status=$gate_status"
} >>"$GITHUB_OUTPUT"
