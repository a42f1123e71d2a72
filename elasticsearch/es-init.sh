#!/bin/bash
# One-shot init of elk-compose.yml: sets the kibana_system password and creates the
# least-privilege Logstash writer (role + user). Idempotent: every call is a PUT/POST that
# replaces. Needs ELASTIC_PASSWORD, KIBANA_SYSTEM_PASSWORD, LOGSTASH_WRITER_USER/PASSWORD.
set -euo pipefail
ES=${ES_URL:-http://elasticsearch:9200}
auth=(-u "elastic:${ELASTIC_PASSWORD}")

until curl -fsS "${auth[@]}" "$ES/_cluster/health?wait_for_status=yellow&timeout=30s" >/dev/null; do
  echo "waiting for Elasticsearch..."; sleep 3
done

call() { # method path body
  local out code
  out=$(curl -sS -o /tmp/resp -w '%{http_code}' "${auth[@]}" -X "$1" "$ES$2" \
        -H 'Content-Type: application/json' -d "$3")
  code=$out
  if [ "$code" -ge 300 ]; then echo "$1 $2 failed ($code): $(cat /tmp/resp)" >&2; exit 1; fi
  echo "$1 $2: ok"
}

call POST /_security/user/kibana_system/_password "{\"password\":\"${KIBANA_SYSTEM_PASSWORD}\"}"
# Logstash only creates documents in the oxibeat data streams (auto_configure lets the first
# document create the data stream from the index template).
call PUT /_security/role/oxibeat_logstash_writer '{
  "cluster": ["monitor"],
  "indices": [{"names": ["logs-oxibeat.*-*", "metrics-oxibeat.*-*"],
               "privileges": ["create_doc", "auto_configure"]}]
}'
call PUT "/_security/user/${LOGSTASH_WRITER_USER}" "{
  \"password\": \"${LOGSTASH_WRITER_PASSWORD}\",
  \"roles\": [\"oxibeat_logstash_writer\"],
  \"full_name\": \"Logstash writer for oxibeat\"
}"
echo "init done"
