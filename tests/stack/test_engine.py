"""The Elasticsearch assets against a real search engine: an OpenSearch 2.19 node assembled from
the server jar and modules published on Maven Central (tests/stack/engine/pom.xml; Elasticsearch
publishes no 8.x/9.x server or modules there). It runs the real mapping parser and template
composition, the real ingest processors (ingest-common, Painless, Mustache) and real indexing
into data streams, on loggen's sample lines (tests/fixtures/loggen/): as Logstash hands them
over (parsed, event.dataset set) and as the agent's Elasticsearch output sends them (raw lines,
parsed by oxibeat-logs-parse).

OpenSearch forked from Elasticsearch 7.10, so a few 9.2 features of our assets do not exist there.
They are translated or left out, each listed in ES_ONLY below, and are checked only by the
stand-in (tests/setup_standin.rs) and the 9.2 spec (test_assets.py), never by this engine.

Cost on this 2-core machine: about 60 MB of Maven artifacts once (tests/run.sh resolves them),
then about 8 s for the node to start and 10 s for the checks, 512 MB of heap.
"""
import datetime
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ES = ROOT / "elasticsearch"
ENGINE = ROOT / "tests" / "stack" / "engine"
FIX = ROOT / "tests" / "fixtures" / "loggen"
CLASSPATH = ROOT / "target" / "engine-classpath.txt"

# What this engine cannot check, and how each is handled.
ES_ONLY = {
    "index.lifecycle.name": "ILM (OpenSearch has ISM instead): the setting is left out",
    "semantic_text": "the oxibeat-logs-semantic component template (ELSER inference) is not loaded",
    "ignore_missing_component_templates": "left out; optional component templates are simply not listed",
    "data_stream_options": "the failure store (Elasticsearch 9.1+): left out",
    "set.copy_from": "replaced by a Mustache value {{{field}}} (same result for the string fields we copy)",
    "pipeline.ignore_missing_pipeline": "replaced by ignore_failure (the @custom pipelines do not exist)",
    "ingest pipeline _meta": "left out (Elasticsearch 7.14+)",
    "reroute": "the reroute processor (Elasticsearch 8.8+) is removed. In Elasticsearch it moves an "
               "event oxibeat-logs-parse parsed to logs-oxibeat.<format>-<namespace> and skips the "
               "rest of oxibeat-logs; the new data stream's default pipeline, oxibeat-logs, then runs "
               "again with event.dataset set, so the parse step is skipped and the rest runs once. "
               "Here the rest runs in the same pass, which gives the same document (only _index "
               "differs). Its body is checked by the 9.2 spec (validate-es-assets); the "
               "data_stream.* fields it routes by are checked here",
    "geoip": "not an Elasticsearch-only processor, but this engine has no MaxMind databases (they "
             "are not on Maven Central, and ingest-geoip refuses a processor without its database "
             "file): the geoip processors are removed, so source.geo.* and source.as.* are checked "
             "only by the mappings check of test_assets.py and the 9.2 spec",
    "logs@*/metrics@*/ecs@mappings": "Elasticsearch's built-ins: their explicit mappings (data_stream.* "
                                      "constant_keyword, @timestamp) are loaded as same-named component "
                                      "templates; ecs@mappings' dynamic templates are not; "
                                      "data_stream.dataset/namespace are keyword (OpenSearch's "
                                      "constant_keyword needs a value up front)",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def classpath():
    if not CLASSPATH.exists():
        mvn = shutil.which("mvn")
        assert mvn, "Maven is needed to resolve the engine (tests/run.sh runs it)"
        CLASSPATH.parent.mkdir(exist_ok=True)
        r = subprocess.run([mvn, "-q", "-B", "-f", str(ENGINE / "pom.xml"), "dependency:build-classpath",
                            f"-Dmdep.outputFile={CLASSPATH}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    return CLASSPATH.read_text().strip()


def call(base, method, path, body=None, ndjson=None):
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if ndjson is not None:
        data = ("\n".join(json.dumps(x) for x in ndjson) + "\n").encode()
        headers["Content-Type"] = "application/x-ndjson"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    java = shutil.which("java")
    assert java, "Java 17 is needed for the engine"
    home = tmp_path_factory.mktemp("engine")
    port = free_port()
    log = open(home / "node.log", "w")
    proc = subprocess.Popen([java, "-Xms512m", "-Xmx512m", "-cp", classpath(), str(ENGINE / "EngineNode.java"),
                             str(home), str(port)], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                st, body = call(base, "GET", "/")
                if st == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (home / "node.log").read_text()[-4000:]
            assert time.time() < deadline, "engine did not start in 120 s:\n" + (home / "node.log").read_text()[-4000:]
            time.sleep(0.5)
        assert body["version"]["distribution"] == "opensearch", body
        yield base
    finally:
        # End of standard input stops the node; kill it if it does not go.
        try:
            proc.stdin.close()
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def load(p):
    return json.loads(p.read_text())


def for_engine_component(name):
    body = load(ES / "component_templates" / f"{name}.json")
    idx = body["template"].get("settings", {}).get("index", {})
    idx.pop("lifecycle", None)
    return body


# Processors this engine cannot run (ES_ONLY): left out of the pipelines it loads.
LEFT_OUT = {"reroute", "geoip"}


def for_engine_pipeline(body):
    """The pipeline translated for this engine as ES_ONLY says."""
    body.pop("_meta", None)
    def fix(procs):
        out = []
        for p in procs:
            (typ, cfg), = p.items()
            if typ in LEFT_OUT:
                continue
            if typ == "set" and "copy_from" in cfg:
                cfg["value"] = "{{{" + cfg.pop("copy_from") + "}}}"
            if typ == "pipeline" and cfg.pop("ignore_missing_pipeline", False):
                cfg["ignore_failure"] = True
            if "on_failure" in cfg:
                cfg["on_failure"] = fix(cfg["on_failure"])
            out.append(p)
        return out
    body["processors"] = fix(body["processors"])
    if "on_failure" in body:
        body["on_failure"] = fix(body["on_failure"])
    return body


def builtin(kind):
    """logs@mappings / metrics@mappings as Elasticsearch 9.2 ships them (explicit part)."""
    return {"template": {"mappings": {"date_detection": False, "properties": {
        "@timestamp": {"type": "date"},
        "data_stream.type": {"type": "constant_keyword", "value": kind},
        # OpenSearch's constant_keyword needs its value up front (ES_ONLY).
        "data_stream.dataset": {"type": "keyword"},
        "data_stream.namespace": {"type": "keyword"}}}}}


@pytest.fixture(scope="module")
def loaded(engine):
    """Every asset the engine can take, loaded the way `oxibeat setup` orders them (a called
    pipeline before its caller: oxibeat-logs-parse, then oxibeat-logs)."""
    order = re.findall(r'Kind::IngestPipeline,\s*"([^"]+)"', (ROOT / "src" / "setup" / "assets.rs").read_text())
    assert order == ["oxibeat-logs-parse", "oxibeat-logs", "oxibeat-metrics"], order
    for name in order:
        st, r = call(engine, "PUT", f"/_ingest/pipeline/{name}", for_engine_pipeline(load(ES / "ingest_pipelines" / f"{name}.json")))
        assert st == 200, (name, r)
    for kind in ("logs", "metrics"):
        st, r = call(engine, "PUT", f"/_component_template/{kind}@mappings", builtin(kind))
        assert st == 200, r
    for p in sorted((ES / "component_templates").glob("*.json")):
        if p.stem == "oxibeat-logs-semantic":
            continue  # semantic_text: ES_ONLY
        st, r = call(engine, "PUT", f"/_component_template/{p.stem}", for_engine_component(p.stem))
        assert st == 200, (p.stem, r)
    for p in sorted((ES / "index_templates").glob("*.json")):
        t = load(p)
        optional = set(t.pop("ignore_missing_component_templates", []))
        t.pop("template", None)  # data_stream_options only: ES_ONLY
        st, have = call(engine, "GET", "/_component_template")
        names = {c["name"] for c in have["component_templates"]}
        missing = [c for c in t["composed_of"] if c not in names and c not in optional]
        # Elasticsearch built-ins the engine has no copy of (ES_ONLY) are the only ones allowed missing.
        assert set(missing) <= {"logs@settings", "metrics@settings", "ecs@mappings"}, missing
        t["composed_of"] = [c for c in t["composed_of"] if c in names]
        st, r = call(engine, "PUT", f"/_index_template/{p.stem}", t)
        assert st == 200, (p.stem, r)
    return engine


def test_root_type_object_is_rejected_by_the_real_mapping_parser(engine):
    """Issue 9 item 1, on a real MappingParser: what the old component templates carried."""
    bad = {"template": {"mappings": {"type": "object", "properties": {"a": {"type": "keyword"}}}}}
    st, r = call(engine, "PUT", "/_component_template/bad-root-type", bad)
    assert st == 400 and "Root mapping definition has unsupported parameters" in json.dumps(r), r


def test_every_template_and_pipeline_loads(loaded):
    st, r = call(loaded, "GET", "/_index_template/oxibeat-*")
    assert st == 200 and {t["name"] for t in r["index_templates"]} == {"oxibeat-logs", "oxibeat-metrics"}, r
    st, r = call(loaded, "GET", "/_ingest/pipeline/oxibeat-*")
    assert st == 200 and set(r) == {p.stem for p in (ES / "ingest_pipelines").glob("*.json")}, r


def job_fields(job):
    ac = job["analysis_config"]
    out = set()
    for d in ac["detectors"]:
        for k in ("field_name", "by_field_name", "over_field_name", "partition_field_name"):
            if d.get(k):
                out.add(d[k])
    if ac.get("categorization_field_name"):
        out.add(ac["categorization_field_name"])
    out |= set(ac.get("influencers", []))
    out.add(job["data_description"].get("time_field", "time"))
    out.discard("mlcategory")
    return out


@pytest.mark.parametrize("stream", ["logs-oxibeat.nginx-default", "metrics-oxibeat.system-default"])
def test_data_streams_map_every_field_their_ml_jobs_read(loaded, stream):
    """A data stream created from our index template maps what the ML jobs read before any
    document arrives (field caps, as the datafeed's data extractor asks)."""
    st, r = call(loaded, "PUT", f"/_data_stream/{stream}")
    assert st == 200, r
    kind = stream.split("-")[0]
    fields = set()
    for p in (ES / "ml" / "datafeeds").glob("*.json"):
        feed = load(p)
        if feed["indices"][0].startswith(kind):
            fields |= job_fields(load(ES / "ml" / "jobs" / f"{feed['job_id']}.json"))
    st, caps = call(loaded, "GET", f"/{stream}/_field_caps?fields={','.join(sorted(fields))}")
    assert st == 200, caps
    assert set(caps["fields"]) >= fields, sorted(fields - set(caps["fields"]))
    if kind == "logs":
        assert "match_only_text" in caps["fields"]["message"], caps["fields"]["message"]


def logstash_like_events():
    """Events as logs.conf hands them to Elasticsearch, built from loggen's sample lines (the
    parsing itself is checked in test_assets.py and tests/logstash_grok.rs). Like logs.conf's,
    they carry event.dataset (= data_stream.dataset), which makes oxibeat-logs skip its parse
    step."""
    nginx = re.compile(r'^(\S+) - \S+ \[[^\]]+\] "(\S+) (\S+) HTTP/([\d.]+)" (\d+) (\d+|-)')
    out = []
    for line in (FIX / "nginx.log").read_text().splitlines()[:40]:
        m = nginx.match(line)
        assert m, line
        out.append(("nginx", {"@timestamp": "2026-11-25T10:00:00.000Z", "message": line,
                              "source": {"address": m.group(1)}, "http": {"request": {"method": m.group(2)},
                              "version": m.group(4), "response": {"status_code": int(m.group(5))}},
                              "url": {"original": m.group(3)}, "data_stream": {"type": "logs", "dataset": "oxibeat.nginx", "namespace": "default"}}))
    app = []
    for line in (FIX / "app.log").read_text().splitlines():
        if re.match(r"^\d{4}-\d{2}-\d{2}T", line) or not app:
            app.append(line)
        else:
            app[-1] += "\n" + line
    for e in app[:60]:
        ts, level, rest = e.split(" ", 2)
        logger, text = rest[1:].split("] ", 1)
        out.append(("app", {"@timestamp": ts, "message": text, "log": {"level": level.lower(), "logger": logger},
                            "data_stream": {"type": "logs", "dataset": "oxibeat.app", "namespace": "default"}}))
    for line in (FIX / "json.log").read_text().splitlines()[:40]:
        d = json.loads(line)
        doc = {"data_stream": {"type": "logs", "dataset": "oxibeat.json", "namespace": "default"}}
        for k, v in d.items():
            if k == "event.dataset":
                continue  # logs.conf sets event.dataset to the data stream's dataset
            cur = doc
            parts = ["oxibeat", "seq"] if k == "seq" else ([k] if k.startswith("@") else k.split("."))
            for p in parts[:-1]:
                cur = cur.setdefault(p, {})
            cur.setdefault(parts[-1], v)
        out.append(("json", doc))
    for fmt, doc in out:
        doc.setdefault("event", {})["dataset"] = doc["data_stream"]["dataset"]
    return out


def test_logs_pipeline_on_generator_lines(loaded):
    events = logstash_like_events()
    st, r = call(loaded, "POST", "/_ingest/pipeline/oxibeat-logs/_simulate", {"docs": [{"_source": e} for _, e in events]})
    assert st == 200, r
    levels = set()
    for (fmt, before), res in zip(events, r["docs"]):
        d = res["doc"]["_source"]
        assert "oxibeat_pipeline_error" not in d.get("tags", []), (d.get("error"), before)
        assert d["event"]["ingested"], d
        # Parsed by Logstash already: the parse step is skipped, nothing is parsed twice.
        assert d["data_stream"] == before["data_stream"] and d["message"] == before["message"], d
        assert d["event"]["dataset"] == before["event"]["dataset"] and "created" not in d["event"], d
        lvl = d["log"]["level"]
        levels.add(lvl)
        assert lvl in ("debug", "info", "warn", "error", "critical"), lvl
        if fmt == "nginx":
            code = before["http"]["response"]["status_code"]
            assert lvl == ("error" if code >= 500 else "warn" if code >= 400 else "info"), (code, lvl)
        if lvl in ("warn", "error", "critical"):
            assert d["oxibeat"]["error_class"], d
            assert d["oxibeat"]["semantic_message"] == d["message"], d
        else:
            assert "semantic_message" not in d.get("oxibeat", {}), d
    assert {"info", "warn", "error"} <= levels, levels


READ_TIME = "2026-11-25T10:05:00.000Z"
NGINX = re.compile(r'^(\S+) - (\S+) \[([^\]]+)\] "(\S+) (\S+) HTTP/([\d.]+)" (\d+) (\d+|-) "([^"]*)" "([^"]*)"$')
JAVA_EXCEPTION = re.compile(r"(?:[a-z_$][a-zA-Z0-9_$]*\.)+[A-Z][a-zA-Z0-9_$]*(?:Exception|Error)")


def agent_event(n, path, message=None, hints=None, flags=None, decoded=None):
    """A log event as oxibeat's Elasticsearch output sends it (DESIGN.md's event shape): the
    read time as @timestamp, the raw line, the input's `fields` hints, and for JSON lines the
    keys the ndjson parser (target "", overwrite_keys false) decoded at the root, dotted ECS
    keys as they are, the line's @timestamp dropped (src/input/filestream/harvester.rs)."""
    e = {"@timestamp": READ_TIME, "log": {"offset": n * 200, "file": {"path": path}},
         "input": {"type": "filestream"}, "host": {"name": "web-1"}, "ecs": {"version": "8.0.0"},
         "agent": {"type": "oxibeat", "name": "web-1", "version": "0.1.0"}}
    if message is not None:
        e["message"] = message
    if flags:
        e["log"]["flags"] = flags
    if hints is not None:
        e["fields"] = hints
    for k, v in (decoded or {}).items():
        if k != "@timestamp":
            e[k] = v
    return e


def direct_events(hinted=True):
    """(format, raw line or decoded JSON, agent event) for loggen's sample lines."""
    def h(fmt, svc):
        return {"log_format": fmt, "service": svc} if hinted else None
    out = []
    for n, line in enumerate((FIX / "nginx.log").read_text().splitlines()[:40]):
        out.append(("nginx", line, agent_event(n, "/var/log/demo/nginx-1.log", line, h("nginx", "web"))))
    app = []
    for line in (FIX / "app.log").read_text().splitlines():
        if re.match(r"^\d{4}-\d{2}-\d{2}T", line) or not app:
            app.append(line)
        else:
            app[-1] += "\n" + line
    for n, e in enumerate(app[:60]):
        out.append(("app", e, agent_event(n, "/var/log/demo/app-1.log", e, h("app", "orders"),
                                          ["multiline"] if "\n" in e else None)))
    for n, line in enumerate((FIX / "json.log").read_text().splitlines()[:40]):
        d = json.loads(line)
        out.append(("json", d, agent_event(n, "/var/log/demo/json-1.log", hints=h("json", "checkout"), decoded=d)))
    return out


def check_direct(fmt, src, before, d, service):
    """What logs.conf gives for the line (logstash/README.md, 'What each format gives')."""
    assert "tags" not in d and d["event"].get("kind") != "pipeline_error", d
    own = src.get("error.message") if isinstance(src, dict) else None
    assert d.get("error", {}).get("message") == own, d
    assert "_tmp" not in d and not [k for k in d if "." in k and not k.startswith("@")], d
    assert d["data_stream"] == {"type": "logs", "dataset": f"oxibeat.{fmt}", "namespace": "default"}, d
    assert d["event"]["dataset"] == f"oxibeat.{fmt}" and d["event"]["created"] == READ_TIME, d
    assert d["event"]["ingested"] and d["log"]["file"]["path"] == before["log"]["file"]["path"], d
    if service:
        assert d["service"]["name"] == service, d
    text = src if isinstance(src, str) else src["message"]
    seq = re.search(r"seq=(\d+)", text)
    if fmt == "nginx":
        m = NGINX.match(src)
        assert m, src
        ip, user, ts, method, url, version, code, size, ref, ua = m.groups()
        assert d["message"] == src and d["source"]["address"] == ip and d["source"]["ip"] == ip, d
        when = datetime.datetime.strptime(ts, "%d/%b/%Y:%H:%M:%S %z").astimezone(datetime.timezone.utc)
        assert d["@timestamp"] == when.strftime("%Y-%m-%dT%H:%M:%S.000Z"), (ts, d)
        assert d["http"]["request"]["method"] == method and d["http"]["version"] == version, d
        assert d["http"]["response"]["status_code"] == int(code), d
        assert d["http"]["response"]["body"].get("bytes") == (None if size == "-" else int(size)), d
        assert d["http"]["request"].get("referrer") == (None if ref == "-" else ref), d
        assert d["url"]["original"] == url and d["url"]["path"] == url.split("?")[0], d
        assert d["url"].get("query") == (url.split("?", 1)[1] if "?" in url else None), d
        assert d["user_agent"]["original"] == ua and d["user_agent"]["name"], d
        assert d.get("user", {}).get("name") == (None if user == "-" else user), d
        lvl = "error" if int(code) >= 500 else "warn" if int(code) >= 400 else "info"
        assert d["log"]["level"] == lvl, d
    elif fmt == "app":
        ts, level, rest = src.split(" ", 2)
        logger, body = rest.lstrip()[1:].split("] ", 1)
        assert d["@timestamp"] == ts and d["log"]["level"] == level.lower() and d["log"]["logger"] == logger, d
        assert d["message"] == body, d
        exc = JAVA_EXCEPTION.search(body)
        assert d.get("error", {}).get("type") == (exc.group(0) if exc else None), d
        if "\n" in body:
            assert d["error"]["stack_trace"] == body.split("\n", 1)[1], d
        else:
            assert "stack_trace" not in d.get("error", {}), d
    else:
        assert "seq" not in d and d["oxibeat"]["seq"] == src["seq"], d
        assert d["@timestamp"] == READ_TIME, "overwrite_keys is false: the read time stays"
        assert d["message"] == src["message"] and d["log"]["level"] == src["log.level"], d
        assert d["log"]["logger"] == src["log.logger"] and d["service"]["name"] == src["service.name"], d
        assert d["trace"]["id"] == src["trace.id"] and d["log"]["offset"] == before["log"]["offset"], d
        if "http.response.status_code" in src:
            assert d["http"]["response"]["status_code"] == src["http.response.status_code"], d
        if "error.type" in src:
            assert d["error"]["type"] == src["error.type"] and d["error"]["stack_trace"] == src["error.stack_trace"], d
    if fmt != "json":
        assert d["oxibeat"].get("seq") == (int(seq.group(1)) if seq else None), d


@pytest.mark.parametrize("hinted", [True, False], ids=["with-fields-hints", "format-guessed"])
def test_direct_path_parses_generator_lines_as_logstash_does(loaded, hinted):
    """The direct path (oxibeat -> Elasticsearch): raw agent events through oxibeat-logs, which
    calls oxibeat-logs-parse, on the real engine's grok, dissect, date, rename, convert,
    user_agent and Painless; the fields logs.conf gives for each format come out (reroute and
    geoip: ES_ONLY)."""
    events = direct_events(hinted)
    st, r = call(loaded, "POST", "/_ingest/pipeline/oxibeat-logs/_simulate", {"docs": [{"_source": e} for *_, e in events]})
    assert st == 200, r
    for (fmt, src, before), res in zip(events, r["docs"]):
        assert "doc" in res, res
        check_direct(fmt, src, before, res["doc"]["_source"],
                     {"nginx": "web", "app": "orders", "json": "checkout"}[fmt] if hinted else None)
    traces = [e for f, e, _ in events if f == "app" and "\n" in e]
    assert traces and sum(f == "nginx" for f, *_ in events) == 40, "multiline app events are in the sample"


def test_direct_path_namespace_hint_and_unparsable_lines(loaded):
    """fields.namespace names the data stream (lower case, [^a-z0-9_] -> _, as logs.conf); a
    line no parser knows is generic; a hinted nginx line that is not one is tagged, not lost."""
    docs = [agent_event(0, "/x.log", "plain text without structure", {"namespace": "Team-A.Prod"}),
            agent_event(1, "/x.log", "not an access line", {"log_format": "NGINX"})]
    st, r = call(loaded, "POST", "/_ingest/pipeline/oxibeat-logs/_simulate", {"docs": [{"_source": e} for e in docs]})
    assert st == 200, r
    a, b = (x["doc"]["_source"] for x in r["docs"])
    assert a["data_stream"] == {"type": "logs", "dataset": "oxibeat.generic", "namespace": "team_a_prod"}, a
    assert a["message"] == "plain text without structure" and "tags" not in a, a
    assert b["data_stream"]["dataset"] == "oxibeat.nginx" and "_grok_nginx_failure" in b["tags"], b
    assert b["message"] == "not an access line" and "_tmp" not in b, b


def test_direct_path_output_indexes_into_the_data_streams(loaded):
    """The direct path's documents fit the composed mappings too (user_agent.*, error.*,
    oxibeat.seq, the JSON lines' trace.* and event.duration): a real bulk create into
    logs-oxibeat.generic-direct (the output's default index is logs-oxibeat.generic-<ns>; the
    reroute to the format's data stream is ES_ONLY), every item created."""
    lines = []
    for n, (_, _, e) in enumerate(direct_events()):
        lines += [{"create": {"_index": "logs-oxibeat.generic-direct", "_id": f"direct-{n}"}}, e]
    st, r = call(loaded, "POST", "/_bulk?refresh=true", ndjson=lines)
    assert st == 200, r
    errors = [i["create"].get("error") for i in r["items"] if i["create"]["status"] >= 300]
    assert not errors, errors[:3]
    st, r = call(loaded, "GET", "/logs-oxibeat.generic-direct/_search?size=200&q=data_stream.dataset:oxibeat.app")
    assert r["hits"]["total"]["value"] == 60, r["hits"]["total"]
    st, caps = call(loaded, "GET", "/logs-oxibeat.generic-direct/_field_caps?fields=user_agent.*,oxibeat.seq,http.response.status_code")
    assert caps["fields"]["oxibeat.seq"].keys() == {"long"}, caps
    assert caps["fields"]["http.response.status_code"].keys() == {"long"}, caps
    assert "keyword" in caps["fields"]["user_agent.name"], caps


def test_pipeline_output_indexes_into_the_data_streams(loaded):
    """The documents the pipeline makes fit the composed mappings: a real bulk create into
    the data streams (the index's default pipeline runs), every item created."""
    events = logstash_like_events()
    lines = []
    for n, (fmt, e) in enumerate(events):
        lines.append({"create": {"_index": f"logs-oxibeat.{fmt}-default", "_id": f"doc-{n}"}})
        lines.append(e)
    st, r = call(loaded, "POST", "/_bulk?refresh=true", ndjson=lines)
    assert st == 200, r
    errors = [i["create"].get("error") for i in r["items"] if i["create"]["status"] >= 300]
    assert not errors, errors[:3]
    # A redelivered line with the same _id: 409, as Logstash's silence_errors_in_log expects.
    st, r = call(loaded, "POST", "/_bulk", ndjson=lines[:2])
    assert r["items"][0]["create"]["status"] == 409, r
    assert r["items"][0]["create"]["error"]["type"] == "version_conflict_engine_exception"
    st, r = call(loaded, "GET", "/logs-oxibeat.*-default/_search?size=0&track_total_hits=true")
    assert r["hits"]["total"]["value"] == len(events), r


def test_metrics_pipeline_and_mapping_take_a_metricbeat_event(loaded):
    doc = {"@timestamp": "2026-11-25T10:00:00.000Z", "event": {"dataset": "system.cpu", "module": "system", "duration": 1200},
           "metricset": {"name": "cpu", "period": 10000}, "host": {"name": "web-1", "cpu": {"usage": 0.25}},
           "system": {"cpu": {"cores": 2, "total": {"pct": 0.5, "norm": {"pct": 0.25}}}},
           "data_stream": {"type": "metrics", "dataset": "oxibeat.system", "namespace": "default"}}
    st, r = call(loaded, "POST", "/_bulk?refresh=true", ndjson=[{"create": {"_index": "metrics-oxibeat.system-default"}}, doc])
    assert st == 200 and not r["errors"], r
    st, r = call(loaded, "GET", "/metrics-oxibeat.system-default/_search")
    src = r["hits"]["hits"][0]["_source"]
    assert src["event"]["ingested"] and src["system"]["cpu"]["total"]["norm"]["pct"] == 0.25, src
