#!/usr/bin/env bash
# The test command of the README: installs what the tests need on a fresh machine, then runs
# every test: Rust unit and integration tests (real binary, real files, a real Apache Kafka,
# stand-in ES/Kibana), the generator's tests, and the stack asset checks (Logstash syntax, ES
# bodies against the 9.2 spec, Kibana references, compose spec). The end-to-end stack test is
# opt-in (OXIBEAT_E2E_STACK=1, see tests/stack/test_e2e.py) and says so when skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r tests/stack/requirements.txt

# osmem-server (an in-memory OpenSearch-compatible server, a static binary in the wheel) for the
# Elasticsearch output tests (tests/elasticsearch.rs); pip keeps the wheel in its cache.
python3 -c 'import importlib.metadata as m; assert m.version("osmem-server") == "0.1.6"' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        osmem-server==0.1.6

export PATH="$HOME/.cargo/bin:$PATH:/usr/local/go/bin"

# Apache Kafka for tests/kafka.rs and benches/kafka.rs: Java 17+ and Maven, then the broker's
# jars from Maven Central (tests/kafka/pom.xml) into a cache outside the repository, once per
# version pinned in tests/kafka/versions.env (a few seconds; later runs download nothing).
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        openjdk-17-jre-headless maven >/dev/null
fi
# shellcheck source=tests/kafka/versions.env
source tests/kafka/versions.env
export OXIBEAT_KAFKA_CACHE="${OXIBEAT_KAFKA_CACHE:-${HOME:-/root}/.cache/oxibeat}"
for v in "$KAFKA_VERSION" "$KAFKA_OLDEST_VERSION"; do
    libs="$OXIBEAT_KAFKA_CACHE/kafka-$v/libs"
    [ -f "$libs/kafka_2.13-$v.jar" ] && continue
    rm -rf "$libs.partial"
    if ! out=$(mvn -B -q -Dstyle.color=never -f tests/kafka/pom.xml -Dkafka.version="$v" \
        -Dkafka.libs="$libs.partial" dependency:copy-dependencies 2>&1); then
        echo "$out" >&2
        echo "tests/run.sh: resolving Apache Kafka $v from Maven Central failed (see above)" >&2
        exit 1
    fi
    rm -rf "$libs" && mv "$libs.partial" "$libs"
done

# A real search engine for tests/stack/test_engine.py: OpenSearch 2.19 server and modules from
# Maven Central (about 60 MB once, cached in ~/.m2), as a classpath file.
mvn -q -B -f tests/stack/engine/pom.xml dependency:build-classpath \
    -Dmdep.outputFile="$PWD/target/engine-classpath.txt"

# The go-lumber reference server for tests/logstash.rs: tests/lumberjack-server, built with Go
# from the Go module proxy (about 18 s cold, under a second from Go's build cache), cached in the
# target directory and rebuilt when its source changes.
ljs_src=tests/lumberjack-server
ljs_bin=$(realpath -m "${CARGO_TARGET_DIR:-target}/go/lumberjack-server")
ljs_sum=$(cat "$ljs_src/go.mod" "$ljs_src/go.sum" "$ljs_src"/*.go | sha256sum | cut -d' ' -f1)
if [ ! -x "$ljs_bin" ] || [ "$(cat "$ljs_bin.sha256" 2>/dev/null)" != "$ljs_sum" ]; then
    mkdir -p "$(dirname "$ljs_bin")"
    (cd "$ljs_src" && GOFLAGS=-mod=readonly go build -o "$ljs_bin" .)
    echo "$ljs_sum" >"$ljs_bin.sha256"
fi
export OXIBEAT_LUMBERJACK_SERVER="$ljs_bin"

# A SOCKS5 proxy for the Logstash output's proxy_url test (Debian package, a few seconds).
command -v microsocks >/dev/null || { apt-get update -qq && apt-get install -y -qq microsocks; }

# The service tests: systemd-analyze (tests/packaging.rs verifies the unit), real journal files
# written by systemd-journal-remote (tests/journald.rs), rpm to install the .rpm, systemd-nspawn
# (Debian packages, a few seconds, only when missing).
need=()
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -x /lib/systemd/systemd-journal-remote ] || [ -x /usr/lib/systemd/systemd-journal-remote ] ||
    need+=(systemd-journal-remote)
command -v rpm >/dev/null || need+=(rpm)
# systemd-nspawn boots the host's systemd with the packaged unit (tests/systemd_nspawn.rs, about
# 5 s); OXIBEAT_NSPAWN=0 skips it where containers cannot run (needs root and namespaces).
export OXIBEAT_NSPAWN="${OXIBEAT_NSPAWN:-1}"
[ "$OXIBEAT_NSPAWN" != 1 ] || command -v systemd-nspawn >/dev/null || need+=(systemd-container)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The packagers of tests/packaging.rs, pinned, built once into ~/.cargo/bin (only when missing).
[ "$(cargo-deb --version 2>/dev/null)" = "cargo-deb 3.8.0" ] ||
    cargo install --quiet --locked cargo-deb --version 3.8.0
[ "$(cargo-generate-rpm --version 2>/dev/null)" = "cargo-generate-rpm 0.21.1" ] ||
    cargo install --quiet --locked cargo-generate-rpm --version 0.21.1

cargo test --locked "$@"
python3 -m pytest tests/stack -q -rs
