#!/bin/sh
# Grade one lesson run from its JSON lines:
#   sudo workbench lesson pid-ns --json | sh grade-lesson.sh
# Prints a line per step and a verdict. Exit status: 0 the lesson passed,
# 1 it failed, 2 it could not start (or the output is not wb_json 1).
set -eu
lines=$(cat)
all() { printf '%s\n' "$lines"; }   # the run's output, again
if ! all | jq -e -s 'all(.wb_json == 1)' >/dev/null; then
  echo "not wb_json 1 output"; exit 2
fi
all | jq -r '
  if .type == "error" then "could not start: \(.message)"
  elif .type == "step" then
    "step \(.number) \(.id): \(if .pass then "pass" else "FAIL" end)"
    + " (\([.checks[] | select(.pass)] | length)"
    + " of \(.checks | length) checks)"
  elif .type == "summary" then
    "\(.lesson): \(.steps_passed) of \(.steps) steps passed"
  else empty end'
if all | jq -e -s 'any(.type == "error")' >/dev/null; then exit 2; fi
all | jq -e -s 'any(.type == "summary" and .pass)' >/dev/null
