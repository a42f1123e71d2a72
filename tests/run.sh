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

# osmem-server (an in-memory OpenSearch-compatible server, a static binary in the wheel) for the
# Elasticsearch output tests (tests/elasticsearch.rs); pip keeps the wheel in its cache.
python3 -c 'import importlib.metadata as m; assert m.version("osmem-server") == "0.1.6"' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        osmem-server==0.1.6

# A real Kafka-protocol broker for tests/kafka.rs, built once per machine (about 20 min on 2 cores).
# The SASL test needs its SQLite storage (libsql feature): a tansu built without it is replaced.
export PATH="$HOME/.cargo/bin:$PATH"
tansu_ready() {
    command -v tansu >/dev/null || return 1
    local probe out
    probe=$(mktemp -d)
    # tansu puts the SQLite file under its working directory.
    out=$(cd "$probe" && timeout 2 tansu broker --listener-url tcp://127.0.0.1:0 \
        --storage-engine sqlite://probe.db 2>&1 || true)
    rm -rf "$probe"
    ! grep -q FeatureNotEnabled <<<"$out"
}
tansu_ready || cargo install tansu --version 0.6.0 --locked --force --features dynostore,libsql

cargo test --locked "$@"
python3 -m pytest tests/stack -q -rs
