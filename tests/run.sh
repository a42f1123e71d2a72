#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh machine, then runs
# every test (Rust unit + integration tests, the generator's tests, and the stack asset checks).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-targets --locked "$@"
