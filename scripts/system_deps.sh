#!/usr/bin/env bash
# System packages the test suite needs beyond Python, installed with apt where missing: the PostgreSQL
# server (initdb, pg_ctl) for the MLflow-on-PostgreSQL tests, and Debian's chromium for the test that
# renders the run report headless. Without root apt, those tests skip and say why.
set -euo pipefail
missing=()
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  missing+=(chromium)
fi
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} missing and no root apt-get: the tests that need them will skip" >&2
fi
