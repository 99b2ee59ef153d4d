#!/usr/bin/env bash
# The action's gate (action.yml): fails the job by the `fail-on` policy, from the scan
# step's status for that policy (0 no findings, 1 findings).
set -euo pipefail
fail_on="${ICD_ACTION_FAIL_ON:-new}"
status="${ICD_ACTION_STATUS:-}"
case "$fail_on" in
none) exit 0 ;;
new | any) ;;
*)
    echo "::error title=insecure-code-detector::fail-on is '$fail_on': expected new, any or none" >&2
    exit 2
    ;;
esac
case "$status" in
0) echo "insecure-code-detector: no findings (fail-on: $fail_on)" ;;
1)
    echo "::error title=insecure-code-detector::findings (fail-on: $fail_on): see the job summary and code scanning" >&2
    exit 1
    ;;
*)
    echo "::error title=insecure-code-detector::the scan step gave no status" >&2
    exit 2
    ;;
esac
