#!/bin/bash
# One-shot init of elk-compose.yml: sets the kibana_system password and creates the
# least-privilege Logstash writer (role + user). Idempotent: every call is a PUT/POST that
# replaces. Needs ELASTIC_PASSWORD, KIBANA_SYSTEM_PASSWORD, LOGSTASH_WRITER_USER/PASSWORD.
# Runs in the Elasticsearch image (bash and curl, no jq or python): JSON strings are escaped
# by json_str, so any password works, quotes and backslashes included.
set -euo pipefail
ES=${ES_URL:-http://elasticsearch:9200}
auth=(-u "elastic:${ELASTIC_PASSWORD}")

# A JSON string literal of $1 (RFC 8259 section 7: quote, backslash and control characters).
json_str() {
  local s=$1 out="" c i code
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      '"') out+='\"' ;;
      '\') out+='\\' ;;
      $'\n') out+='\n' ;;
      $'\r') out+='\r' ;;
      $'\t') out+='\t' ;;
      *)
        printf -v code '%d' "'$c"
        if ((code >= 0 && code < 32)); then
          printf -v c '\\u%04x' "$code"
        fi
        out+=$c
        ;;
    esac
  done
  printf '"%s"' "$out"
}

until curl -fsS "${auth[@]}" "$ES/_cluster/health?wait_for_status=yellow&timeout=30s" >/dev/null; do
  echo "waiting for Elasticsearch..."; sleep 3
done

resp=$(mktemp)
trap 'rm -f "$resp"' EXIT
call() { # method path body
  local code
  code=$(curl -sS -o "$resp" -w '%{http_code}' "${auth[@]}" -X "$1" "$ES$2" \
        -H 'Content-Type: application/json' --data-binary @- <<<"$3")
  if [ "$code" -ge 300 ]; then echo "$1 $2 failed ($code): $(cat "$resp")" >&2; exit 1; fi
  echo "$1 $2: ok"
}

call POST /_security/user/kibana_system/_password "{\"password\":$(json_str "$KIBANA_SYSTEM_PASSWORD")}"
# Logstash only creates documents in the oxibeat data streams (auto_configure lets the first
# document create the data stream from the index template).
call PUT /_security/role/oxibeat_logstash_writer '{
  "cluster": ["monitor"],
  "indices": [{"names": ["logs-oxibeat.*-*", "metrics-oxibeat.*-*"],
               "privileges": ["create_doc", "auto_configure"]}]
}'
call PUT "/_security/user/${LOGSTASH_WRITER_USER}" "{
  \"password\": $(json_str "$LOGSTASH_WRITER_PASSWORD"),
  \"roles\": [\"oxibeat_logstash_writer\"],
  \"full_name\": \"Logstash writer for oxibeat\"
}"
echo "init done"
