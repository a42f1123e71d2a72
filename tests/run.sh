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

cargo test --locked "$@"
python3 -m pytest tests/stack -q -rs
