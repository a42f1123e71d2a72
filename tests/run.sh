#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh machine, then runs
# every test: Rust unit and integration tests (real binary, real files, stand-in ES/Kibana),
# the generator's tests, and the stack asset checks (Logstash syntax, ES bodies against the
# 9.2 spec, Kibana references, compose spec). The end-to-end stack test is opt-in
# (OXIBEAT_E2E_STACK=1, see tests/stack/test_e2e.py) and says so when skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r tests/stack/requirements.txt

# A real Kafka-protocol broker for tests/kafka.rs, built once per machine (about 15 min on 2 cores).
export PATH="$HOME/.cargo/bin:$PATH"
command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore

cargo test --locked "$@"
python3 -m pytest tests/stack -q -rs
