"""Checks of the stack assets that need Python tools: Logstash config syntax (two parsers),
dissect on generator-like lines, Elasticsearch bodies against Elasticsearch's OpenAPI spec,
Kibana saved objects, compose specification, and one field-consistency check across all of it.

    pip install lscl==0.5 logstash-pipeline-parser==0.0.3 openapi-schema-validator==0.9.0 \
                check-jsonschema==0.39.0 pyyaml pytest
    python -m pytest tests/stack -q
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
LS = ROOT / "logstash"
ES = ROOT / "elasticsearch"
KB = ROOT / "kibana"
CONFS = sorted((LS / "pipeline").glob("*.conf"))


def load_json(p):
    return json.loads(p.read_text())


# --------------------------------------------------------------------------- Logstash syntax

@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.name)
def test_logstash_config_parses_with_lscl(conf):
    from lscl.parser import parse_lscl

    tree = parse_lscl(conf.read_text())
    sections = [b.name for b in tree]
    assert "input" in sections and "output" in sections, sections


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: p.name)
def test_logstash_config_parses_with_logstash_pipeline_parser(conf):
    from logstash_pipeline_parser import Pipeline

    Pipeline(conf.read_text()).parse()


def test_parsers_do_reject_broken_configs():
    """The syntax tests mean something only if the parsers fail on bad input."""
    from lscl.parser import parse_lscl
    from logstash_pipeline_parser import Pipeline

    broken = (LS / "pipeline" / "logs.conf").read_text().replace("filter {", "filter {{", 1)
    with pytest.raises(Exception):
        parse_lscl(broken)
    with pytest.raises(Exception):
        Pipeline(broken).parse()


def conf_text(name):
    return (LS / "pipeline" / name).read_text()


def test_pipelines_yml_wires_pipeline_to_pipeline():
    pipelines = yaml.safe_load((LS / "config" / "pipelines.yml").read_text())
    ids = {p["pipeline.id"]: p for p in pipelines}
    assert set(ids) == {"kafka-in", "logs", "metrics"}
    for p in pipelines:
        path = p["path.config"].replace("/usr/share/logstash/pipeline/", "")
        assert (LS / "pipeline" / path).is_file(), path
        assert p.get("queue.type") == "persisted", p
    for pid in ("logs", "metrics"):
        assert ids[pid].get("dead_letter_queue.enable") is True, pid
    sent = set(re.findall(r'send_to\s*=>\s*\["([^"]+)"\]', conf_text("kafka-in.conf")))
    addresses = set()
    for c in CONFS:
        addresses |= set(re.findall(r'pipeline\s*\{\s*address\s*=>\s*"([^"]+)"', c.read_text()))
    assert sent and sent == addresses, (sent, addresses)


def test_kafka_input_settings():
    t = conf_text("kafka-in.conf")
    for needle in ['codec => json', 'decorate_events => "basic"', "group_id =>", '"oxibeat-logs"', '"oxibeat-metrics"']:
        assert needle in t, needle


@pytest.mark.parametrize("name", ["logs.conf", "metrics.conf"])
def test_outputs_use_data_streams_and_env_credentials(name):
    t = conf_text(name)
    assert 'data_stream => "true"' in t
    assert 'password => "${LOGSTASH_WRITER_PASSWORD}"' in t
    assert 'document_id => "%{[@metadata][document_id]}"' in t
    assert not re.search(r'password\s*=>\s*"[^$]', t), "no literal password"


def test_logstash_yml():
    cfg = yaml.safe_load((LS / "config" / "logstash.yml").read_text())
    assert cfg["allow_superuser"] is False
    assert cfg["api.http.host"] == "0.0.0.0"
    assert cfg["pipeline.ecs_compatibility"] == "v8"


# --------------------------------------------------------------------------- dissect

def dissect(mapping, text):
    """Logstash dissect semantics for the subset used here: %{key} takes text up to the next
    delimiter (first occurrence), %{key->} also skips repeated delimiters after it, the last
    key takes the rest (newlines included). Returns None where Logstash tags a failure."""
    parts = re.split(r"(%\{[^}]*\})", mapping)
    out, pos = {}, 0
    if parts[0]:
        if not text.startswith(parts[0]):
            return None
        pos = len(parts[0])
    i = 1
    while i < len(parts):
        key = parts[i][2:-1]
        delim = parts[i + 1] if i + 1 < len(parts) else ""
        pad = key.endswith("->")
        key = key[:-2] if pad else key
        if not delim:
            out[key] = text[pos:]
            return out
        end = text.find(delim, pos)
        if end < 0:
            return None
        if key:
            out[key] = text[pos:end]
        pos = end + len(delim)
        if pad:
            while text.startswith(delim, pos):
                pos += len(delim)
        i += 2
    return out


def app_mapping():
    m = re.search(r'dissect\s*\{.*?mapping\s*=>\s*\{\s*"message"\s*=>\s*"([^"]+)"', conf_text("logs.conf"), re.S)
    assert m, "app dissect mapping not found"
    return m.group(1)


def test_dissect_splits_generator_app_lines():
    mp = app_mapping()
    one = "2026-11-25T10:00:00.123Z INFO [com.example.CartService] Added item 42 to cart 7 seq=3"
    r = dissect(mp, one)
    assert r == {
        "[@metadata][ts]": "2026-11-25T10:00:00.123Z",
        "[log][level]": "INFO",
        "[log][logger]": "com.example.CartService",
        "[@metadata][text]": "Added item 42 to cart 7 seq=3",
    }, r
    multi = ("2026-11-25T10:00:00.123Z ERROR [com.example.OrderService] Failed to process order 123: "
             "java.lang.IllegalStateException: order 123 is locked seq=8\n"
             "\tat com.example.OrderService.process(OrderService.java:42)\n"
             "Caused by: java.sql.SQLException: deadlock detected\n"
             "\t... 2 more")
    r = dissect(mp, multi)
    assert r["[log][level]"] == "ERROR"
    assert r["[log][logger]"] == "com.example.OrderService"
    text = r["[@metadata][text]"]
    assert text.startswith("Failed to process order 123") and text.endswith("\t... 2 more"), text
    assert text.count("\n") == 3, "the stack trace stays in the event"
    # Padded levels (some frameworks align them) still split.
    r = dissect(mp, "2026-11-25T10:00:00.123Z WARN  [x.Y] slow seq=1")
    assert r["[log][level]"] == "WARN" and r["[log][logger]"] == "x.Y", r
    assert dissect(mp, "no structure at all") is None


def test_format_guess_without_hints():
    """Without [fields][log_format], logs.conf picks the parser with two regexes; dissect
    itself would split any line, so the guess must keep nginx lines away from it."""
    found = re.findall(r"\[message\] =~ /(.+?)/ \{", conf_text("logs.conf"))
    assert len(found) == 2, found
    nginx, app = (re.compile(r) for r in found)
    n = '203.0.113.9 - - [25/Nov/2026:10:00:00 +0000] "GET /api/items?id=42&seq=7 HTTP/1.1" 200 512 "https://example.com/" "Mozilla/5.0 (X11)"'
    a = "2026-11-25T10:00:00.123Z ERROR [com.example.OrderService] Failed to process order 123 seq=8"
    assert nginx.search(n) and not app.search(n)
    assert app.search(a) and not nginx.search(a)


FIX = ROOT / "tests" / "fixtures" / "loggen"


def fixture_app_events():
    events = []
    for line in (FIX / "app.log").read_text().splitlines():
        if re.match(r"^\d{4}-\d{2}-\d{2}T", line) or not events:
            events.append(line)
        else:
            events[-1] += "\n" + line
    return events


def test_dissect_splits_every_generator_app_event():
    mp = app_mapping()
    events = fixture_app_events()
    assert len(events) == 120
    for e in events:
        r = dissect(mp, e)
        assert r is not None, e
        assert r["[log][level]"] in ("DEBUG", "INFO", "WARN", "ERROR"), e
        assert re.fullmatch(r"[\w.$]+", r["[log][logger]"]), e
        assert r["[@metadata][text]"] == e.split("] ", 1)[1], "the whole event stays, traces included"


def test_format_guess_on_generator_lines():
    found = re.findall(r"\[message\] =~ /(.+?)/ \{", conf_text("logs.conf"))
    nginx, app = (re.compile(r) for r in found)
    for line in (FIX / "nginx.log").read_text().splitlines():
        assert nginx.search(line) and not app.search(line), line
    for e in fixture_app_events():
        assert app.search(e) and not nginx.search(e), e


def expand_dots(doc):
    """What the json_expand_dots ruby filter of logs.conf does."""
    out = {}
    for k, v in doc.items():
        if k.startswith("@") or "." not in k:
            out.setdefault(k, v)
            continue
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur.setdefault(parts[-1], v)
    return out


def test_generator_json_lines_map_to_the_fields_dashboards_use():
    lines = (FIX / "json.log").read_text().splitlines()
    assert lines
    logs_fields = set(mapped_fields("logs"))
    seqs = []
    for l in lines:
        doc = json.loads(l)
        assert "log.level" in doc and "message" in doc, l
        e = expand_dots(doc)
        assert e["log"]["level"] in ("debug", "info", "warn", "error"), l
        assert e["service"]["name"], l
        seqs.append(doc["seq"])
        if "http" in e:
            assert isinstance(e["http"]["response"]["status_code"], int)
            assert "http.response.status_code" in logs_fields
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "consecutive seq"


# --------------------------------------------------------------------------- Elasticsearch

ES_FILES = sorted(ES.rglob("*.json"))


@pytest.mark.parametrize("path", ES_FILES, ids=lambda p: str(p.relative_to(ES)))
def test_es_body_is_a_json_object(path):
    assert isinstance(load_json(path), dict)


def test_es_bodies_match_the_elasticsearch_9_2_spec():
    tool = SHARED / "tools" / "validate-es-assets"
    spec = SHARED / "elastic-spec" / "es-serverless-openapi-9.2.json"
    if not tool.exists() or not spec.exists():
        pytest.skip(f"SKIPPED: {tool} or {spec} is absent (a dev-time check that lives beside the repo)")
    r = subprocess.run([sys.executable, str(tool), str(ES)], capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    checked = [l for l in r.stdout.splitlines() if l.startswith("ok")]
    # Everything but the ILM policy (the serverless spec has no ILM paths).
    assert len(checked) == len(ES_FILES) - 1, r.stdout


def test_ilm_policy_shape():
    p = load_json(ES / "ilm" / "oxibeat.json")["policy"]
    assert set(p["phases"]) <= {"hot", "warm", "cold", "frozen", "delete"}
    assert "rollover" in p["phases"]["hot"]["actions"]
    assert "delete" in p["phases"]["delete"]["actions"]


def test_index_templates_compose_the_builtin_components():
    names = {p.stem for p in (ES / "component_templates").glob("*.json")}
    for kind in ("logs", "metrics"):
        t = load_json(ES / "index_templates" / f"oxibeat-{kind}.json")
        assert t["index_patterns"] == [f"{kind}-oxibeat.*-*"]
        assert t["priority"] > 100 and "data_stream" in t
        for c in (f"{kind}@mappings", f"{kind}@settings", "ecs@mappings"):
            assert c in t["composed_of"], c
        ours = [c for c in t["composed_of"] if c.startswith("oxibeat-")]
        optional = set(t.get("ignore_missing_component_templates", []))
        assert all(c in names or c in optional for c in ours), ours
        settings = load_json(ES / "component_templates" / f"oxibeat-{kind}-settings.json")["template"]["settings"]["index"]
        assert settings["lifecycle"]["name"] == "oxibeat"
        assert (ES / "ingest_pipelines" / f"{settings['default_pipeline']}.json").is_file()


def test_semantic_text_is_explicit_and_fed_only_from_warn_and_error():
    props = load_json(ES / "component_templates" / "oxibeat-logs-semantic.json")["template"]["mappings"]["properties"]
    sem = props["oxibeat"]["properties"]["semantic_message"]
    t = load_json(ES / "index_templates" / "oxibeat-logs.json")
    assert "oxibeat-logs-semantic" in t["composed_of"] and "oxibeat-logs-semantic" in t["ignore_missing_component_templates"]
    assert sem["type"] == "semantic_text" and sem["inference_id"] == ".elser-2-elasticsearch"
    # Chunks small enough for ELSER's 512-token window on stack traces (sentence strategy:
    # max_chunk_size >= 20 words, sentence_overlap 0 or 1; SentenceBoundaryChunkingSettings).
    ch = sem["chunking_settings"]
    assert ch["strategy"] == "sentence" and 20 <= ch["max_chunk_size"] <= 80 and ch["sentence_overlap"] in (0, 1)
    pipe = load_json(ES / "ingest_pipelines" / "oxibeat-logs.json")
    setters = [p["set"] for p in pipe["processors"] if "set" in p and p["set"]["field"] == "oxibeat.semantic_message"]
    assert len(setters) == 1
    cond = setters[0]["if"]["source"]
    assert "warn" in cond and "error" in cond and "info" not in cond
    assert pipe["on_failure"], "the pipeline records failures"


def test_ml_jobs_and_datafeeds_pair_up():
    jobs = {p.stem: load_json(p) for p in (ES / "ml" / "jobs").glob("*.json")}
    feeds = {p.stem: load_json(p) for p in (ES / "ml" / "datafeeds").glob("*.json")}
    assert set(feeds) == {f"datafeed-{j}" for j in jobs}
    cat = jobs["oxibeat-log-categories"]["analysis_config"]
    funcs = {d["function"] for d in cat["detectors"]}
    assert funcs == {"count", "rare"}
    assert all(d["by_field_name"] == "mlcategory" and d.get("partition_field_name") for d in cat["detectors"])
    assert cat["per_partition_categorization"]["enabled"] is True


# --------------------------------------------------------------------------- Kibana

def kibana_objects():
    return [json.loads(l) for l in (KB / "oxibeat.ndjson").read_text().splitlines() if l.strip()]


def test_kibana_ndjson_is_what_the_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("kbgen", KB / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.text == (KB / "oxibeat.ndjson").read_text(), "run python3 kibana/generate.py and commit"


def test_kibana_objects_parse_and_references_resolve():
    objs = kibana_objects()
    ids = {(o["type"], o["id"]) for o in objs}
    assert len(ids) == len(objs), "unique (type, id)"
    titles = {o["attributes"]["title"] for o in objs if o["type"] == "dashboard"}
    for t in ("[oxibeat] Logs overview", "[oxibeat] Web traffic", "[oxibeat] Host metrics", "[oxibeat] Anomalies"):
        assert t in titles, t
    assert ("search", "oxibeat-search-errors") in ids
    for o in objs:
        assert o["coreMigrationVersion"] and o["typeMigrationVersion"], o["id"]
        for r in o["references"]:
            assert (r["type"], r["id"]) in ids, (o["id"], r)
        a = o["attributes"]
        for k in ("visState", "panelsJSON", "optionsJSON", "mapStateJSON", "layerListJSON", "uiStateJSON"):
            if k in a:
                json.loads(a[k])
        ss = a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if ss:
            src = json.loads(ss)
            if "indexRefName" in src:
                assert any(r["name"] == src["indexRefName"] for r in o["references"]), o["id"]
        if o["type"] == "dashboard":
            refs = {r["name"] for r in o["references"]}
            for p in json.loads(a["panelsJSON"]):
                if "panelRefName" in p:
                    assert f'{p["panelIndex"]}:{p["panelRefName"]}' in refs, (o["id"], p)
                else:
                    assert p["type"] == "ml_anomaly_swimlane", p
                    jobs = {j.stem for j in (ES / "ml" / "jobs").glob("*.json")}
                    assert set(p["embeddableConfig"]["jobIds"]) <= jobs
        if o["type"] == "map":
            layers = json.loads(a["layerListJSON"])
            for l in layers:
                ref = l["sourceDescriptor"].get("indexPatternRefName")
                if ref:
                    assert any(r["name"] == ref for r in o["references"]), ref


# --------------------------------------------------------------------------- consistency

def flatten_mapping(props, prefix=""):
    out = {}
    for k, v in props.items():
        name = f"{prefix}{k}"
        if "properties" in v:
            out.update(flatten_mapping(v["properties"], name + "."))
        else:
            out[name] = v.get("type", "object")
    return out


def mapped_fields(kind):
    """Fields mapped for the `logs` or `metrics` data streams by our component template and
    the built-in components it is composed with."""
    out = {}
    for name in (f"oxibeat-{kind}-mappings", f"oxibeat-{kind}-semantic"):
        p = ES / "component_templates" / f"{name}.json"
        if p.exists():
            out.update(flatten_mapping(load_json(p)["template"]["mappings"]["properties"]))
    out.update({"@timestamp": "date", "data_stream.type": "constant_keyword",
                "data_stream.dataset": "constant_keyword", "data_stream.namespace": "constant_keyword"})
    if kind == "logs":
        out["message"] = "match_only_text"
    return out


# Fields of the ML results index (.ml-anomalies-*), written by Elasticsearch's ML.
ML_RESULT_FIELDS = {"record_score", "job_id", "partition_field_value", "function", "result_type", "timestamp"}


def logstash_produced(conf):
    """Fields a Logstash pipeline writes: grok/dissect captures, mutate/rename/copy targets,
    the ECS outputs of geoip and useragent, and the data_stream routing fields."""
    t = conf_text(conf)
    refs = set(re.findall(r"%\{[A-Z0-9_]+:((?:\[[^\]]+\])+)", t))
    refs |= set(re.findall(r"%\{((?:\[[^\]]+\])+)(?:->)?\}", t))
    refs |= set(re.findall(r'"((?:\[[^\]@][^\]]*\])+)"\s*=>', t))
    refs |= set(re.findall(r'=>\s*"((?:\[[^\]@][^\]]*\])+)"', t))
    fields = {".".join(re.findall(r"\[([^\]]+)\]", r)) for r in refs}
    fields = {f for f in fields if not f.startswith("@metadata") and not f.startswith("fields.")}
    if "geoip" in t:
        fields |= {"source.geo.location", "source.geo.country_iso_code", "source.geo.country_name",
                   "source.geo.city_name", "source.geo.region_name", "source.geo.continent_name"}
    if "useragent" in t:
        fields |= {"user_agent.name", "user_agent.version", "user_agent.os.name", "user_agent.os.version",
                   "user_agent.os.full", "user_agent.device.name"}
    return fields


def metricbeat_fields():
    out = set()
    ref = SHARED / "filebeat-reference"
    for p in ref.glob("metricbeat-system-*.json") if ref.is_dir() else []:
        def walk(o, pre=""):
            for k, v in o.items():
                if isinstance(v, dict):
                    walk(v, f"{pre}{k}.")
                else:
                    out.add(f"{pre}{k}")
        walk(load_json(p))
    return out


# The event shape of DESIGN.md.
AGENT_FIELDS = {"@timestamp", "message", "log.offset", "log.file.path", "log.file.device_id", "log.file.inode",
                "log.file.fingerprint", "log.flags", "input.type", "ecs.version", "host.name", "agent.type",
                "agent.name", "agent.version", "agent.id", "agent.ephemeral_id", "tags", "fields"}


def upstream(kind):
    if kind == "logs":
        return AGENT_FIELDS | logstash_produced("logs.conf")
    return (AGENT_FIELDS - {"message"}) | metricbeat_fields() | logstash_produced("metrics.conf")


KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*(?::|>=|<=|>|<)")
VIEW_KIND = {"oxibeat-logs": "logs", "oxibeat-metrics": "metrics", "oxibeat-ml-anomalies": "ml-results"}


def kibana_used_fields():
    """(kind, field, where, needs_aggregation) for every field a saved object uses; kind is the
    data the object reads, from its data view reference."""
    used = []
    for o in kibana_objects():
        a = o["attributes"]
        where = f'{o["type"]}:{o["id"]}'
        views = {VIEW_KIND[r["id"]] for r in o["references"] if r["type"] == "index-pattern"}
        if not views:
            continue
        assert len(views) == 1, where
        kind = views.pop()
        if "visState" in a:
            for ag in json.loads(a["visState"])["aggs"]:
                f = ag["params"].get("field") or ag["params"].get("customMetric", {}).get("params", {}).get("field")
                if f:
                    used.append((kind, f, where, True))
        ss = a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if ss:
            for f in KQL_FIELD.findall(json.loads(ss)["query"]["query"]):
                used.append((kind, f, where, False))
        for c in a.get("columns", []):
            used.append((kind, c, where, False))
        if "layerListJSON" in a:
            for l in json.loads(a["layerListJSON"]):
                g = l["sourceDescriptor"].get("geoField")
                if g:
                    used.append((kind, g, where, True))
            q = json.loads(a["mapStateJSON"])["query"]["query"]
            for f in KQL_FIELD.findall(q):
                used.append((kind, f, where, False))
    return used


def ml_used_fields():
    used = []
    for p in (ES / "ml" / "jobs").glob("*.json"):
        feed = load_json(ES / "ml" / "datafeeds" / f"datafeed-{p.stem}.json")
        kinds = {i.split("-")[0] for i in feed["indices"]}
        assert len(kinds) == 1, p
        kind = kinds.pop()
        ac = load_json(p)["analysis_config"]
        for d in ac["detectors"]:
            for k in ("field_name", "by_field_name", "over_field_name", "partition_field_name"):
                if d.get(k) and d[k] != "mlcategory":
                    used.append((kind, d[k], p.stem, True))
        for f in ac.get("influencers", []):
            if f != "mlcategory":
                used.append((kind, f, p.stem, True))
        if ac.get("categorization_field_name"):
            used.append((kind, ac["categorization_field_name"], p.stem, False))
        q = json.dumps(feed["query"])
        for f in re.findall(r'"(?:terms|term)": \{"([\w.@]+)"', q) + re.findall(r'"exists": \{"field": "([\w.@]+)"', q):
            used.append((kind, f, feed["job_id"] + " datafeed", False))
    return used


# Fields of the raw event that an ingest pipeline may read although nothing in this repository
# produces them: the only inputs that count as produced upstream for a pipeline, each with why.
# (Kibana objects and ML jobs never see them: the pipelines rename or remove them.)
_HINT = ("a per-input hint of logstash/README.md, set by the user's config: the input's `fields` "
         "option (Filebeat's, kept under `fields` since fields_under_root defaults to false, "
         "src/config/filestream.rs) or add_fields (default target `fields`); the agent itself "
         "puts nothing under `fields`")
_JSON_KEY = ("a root key of a JSON line decoded by the ndjson parser with target \"\" "
             "(examples/stack/oxibeat-agent.toml), in a spelling logs.conf and oxibeat-logs-parse "
             "rename to ECS or parse into @timestamp and remove, so it is never mapped")
RAW_EVENT_INPUTS = {
    "fields.log_format": _HINT,
    "fields.service": _HINT,
    "fields.namespace": _HINT,
    "seq": _JSON_KEY + " (-> oxibeat.seq)",
    "level": _JSON_KEY + " (-> log.level)",
    "logger": _JSON_KEY + " (-> log.logger)",
    "msg": _JSON_KEY + " (-> message)",
    "time": _JSON_KEY + " (-> @timestamp, removed)",
    "ts": _JSON_KEY + " (-> @timestamp, removed)",
    "timestamp": _JSON_KEY + " (-> @timestamp, removed)",
}

# Document metadata a pipeline may read or set, not mapping fields: IngestDocument.Metadata
# (_index, _type, _id, _routing, _version, _version_type, _if_seq_no, _if_primary_term,
# _dynamic_templates) and the _ingest namespace (IngestDocument.INGEST_KEY), in Elasticsearch's
# server/src/main/java/org/elasticsearch/ingest/IngestDocument.java.
INGEST_METADATA = {"_index", "_type", "_id", "_routing", "_version", "_version_type", "_if_seq_no",
                   "_if_primary_term", "_dynamic_templates", "_ingest"}

# A field of ctx in Painless: ctx.a.b (null-safe ?. too; a trailing method call such as
# ctx.tags.add(...) names ctx.tags, and one on ctx itself, ctx.remove(k) or ctx.keySet(), names
# no field) or ctx['a.b'].
CTX_FIELD = re.compile(r"ctx((?:\??\.[A-Za-z_]\w*(?![\w(]))+)|ctx\[\s*'([^']+)'\s*\]")
MUSTACHE_FIELD = re.compile(r"\{\{\{?\s*([^{}\s]+)\s*\}?\}\}")

# What geoip writes under target_field without `properties` (the database's default properties,
# modules/ingest-geoip/.../Database.java; names from MaxmindIpDataLookups.java), and what
# user_agent writes (UserAgentProcessor default properties, ECS names).
GEOIP_DEFAULTS = {"City": ["country_iso_code", "country_name", "continent_name", "region_iso_code", "region_name",
                           "city_name", "location"],
                  "Country": ["continent_name", "country_name", "country_iso_code"],
                  "ASN": ["ip", "asn", "organization_name", "network"]}
USER_AGENT_FIELDS = ["original", "name", "version", "os.name", "os.version", "os.full", "device.name"]


def is_metadata(field):
    return field.split(".")[0] in INGEST_METADATA


def grok_captures(pattern):
    return [m.group(1) for m in re.finditer(r"%\{\w+:([^:}]+)(?::\w+)?\}", pattern)]


def dissect_keys(pattern):
    out = []
    for k in re.findall(r"%\{([^}]*)\}", pattern):
        k = re.sub(r"->$", "", k).lstrip("+&*")
        k = re.sub(r"/\d+$", "", k)
        if k and not k.startswith("?"):
            out.append(k)
    return out


def script_accesses(src):
    """(field, is_write) for each ctx field a Painless source names, in source order."""
    out = []
    for m in CTX_FIELD.finditer(src):
        field = m.group(2) if m.group(2) is not None else m.group(1).replace("?", "")[1:]
        write = re.match(r"\s*=(?!=)", src[m.end():]) is not None
        out.append((field, write))
    return out


def processor_accesses(ptype, cfg, produced_by):
    """The reads and writes of one processor (not its `if` or on_failure): two lists of fields."""
    reads, writes = [], []
    field = cfg.get("field")
    fields = field if isinstance(field, list) else [field] if field else []
    for v in cfg.values():
        if isinstance(v, str):
            reads += [f for f in MUSTACHE_FIELD.findall(v)]
    if ptype == "set":
        writes.append(cfg["field"])
        if cfg.get("copy_from"):
            reads.append(cfg["copy_from"])
    elif ptype == "append":
        writes.append(cfg["field"])
    elif ptype == "remove":
        reads += fields
    elif ptype == "rename":
        reads.append(cfg["field"])
        writes.append(cfg["target_field"])
    elif ptype == "grok":
        reads += fields
        for p in cfg["patterns"]:
            writes += grok_captures(p)
    elif ptype == "dissect":
        reads += fields
        writes += dissect_keys(cfg["pattern"])
    elif ptype == "date":
        reads += fields
        writes.append(cfg.get("target_field", "@timestamp"))
    elif ptype == "geoip":
        reads += fields
        target = cfg.get("target_field", "geoip")
        db = cfg.get("database_file", "GeoLite2-City.mmdb")
        kind = next(k for k in GEOIP_DEFAULTS if db.endswith(f"-{k}.mmdb"))
        writes += [f"{target}.{p}" for p in cfg.get("properties", GEOIP_DEFAULTS[kind])]
    elif ptype == "user_agent":
        reads += fields
        target = cfg.get("target_field", "user_agent")
        writes += [f"{target}.{p}" for p in USER_AGENT_FIELDS]
    elif ptype == "script":
        pass  # script_accesses, with the script's own writes
    elif ptype == "pipeline":
        writes += produced_by.get(cfg["name"], [])
    elif ptype == "reroute":
        pass  # dataset/namespace are Mustache reads
    else:  # convert, lowercase, json, fingerprint, ...: field in, target_field (or field) out
        reads += fields
        writes.append(cfg.get("target_field") or (fields[0] if fields else None))
    return [f for f in reads if f], [f for f in writes if f]


def walk_pipeline(name, body, produced_by):
    """Accesses of one pipeline in processor order: (role, field, where, satisfied) with role
    read/write. A read is satisfied by the pipeline itself when an earlier processor (or, in a
    script, the script itself: `if (ctx.x == null) { ctx.x = [:]; }`) produced the field or a
    subfield of it; a write is, when a later processor removes or renames away the field or an
    object above it (temporary fields such as _tmp.*). Also returns what the pipeline leaves."""
    produced, ever, accesses = set(), set(), []

    def known_here(f, extra=()):
        have = produced | set(extra)
        return f in have or any(p.startswith(f + ".") for p in have)

    def visit(procs, parent):
        for proc in procs:
            (ptype, cfg), = proc.items()
            where = f"{parent}{ptype}" + (f"({cfg['tag']})" if cfg.get("tag") else "")
            cond = cfg.get("if", "")
            cond = cond.get("source", "") if isinstance(cond, dict) else cond
            for f, _ in script_accesses(cond):
                accesses.append(("read", f, where + " if", known_here(f)))
            reads, writes = processor_accesses(ptype, cfg, produced_by)
            if ptype == "script":
                own = script_accesses(cfg.get("source", ""))
                mine = [f for f, w in own if w]
                for f, w in own:
                    accesses.append(("write" if w else "read", f, where + " script", None if w else known_here(f, mine)))
                writes = mine
            for f in reads:
                accesses.append(("read", f, where, known_here(f)))
            visit(cfg.get("on_failure", []), f"{where}.on_failure:")
            for f in writes:
                if ptype != "script" and ptype != "pipeline":
                    accesses.append(("write", f, where, None))
                produced.add(f)
                ever.add(f)
            if ptype == "rename":
                produced.discard(cfg["field"])
            if ptype == "remove":
                fs = cfg["field"] if isinstance(cfg["field"], list) else [cfg["field"]]
                produced.difference_update({p for p in produced for f in fs if p == f or p.startswith(f + ".")})
    visit(body["processors"], f"{name}:")
    left = set(produced)
    # The pipeline's on_failure runs after whichever processor failed: anything produced on
    # the way may be there (the _tmp a failure leaves behind, before tmp_cleanup).
    produced |= ever
    visit(body.get("on_failure", []), f"{name}:on_failure:")

    # Writes the pipeline removes or renames away later are temporary, not mapping fields.
    gone = []
    for proc in body["processors"]:
        (ptype, cfg), = proc.items()
        if ptype == "remove":
            gone += cfg["field"] if isinstance(cfg["field"], list) else [cfg["field"]]
        elif ptype == "rename":
            gone.append(cfg["field"])
    out = []
    for role, f, where, ok in accesses:
        if role == "write":
            ok = any(f == g or f.startswith(g + ".") for g in gone)
        out.append((role, f, where, ok))
    return out, left


def pipeline_accesses():
    """{pipeline name: accesses} for every ingest pipeline, called pipelines walked first."""
    bodies = {p.stem: load_json(p) for p in (ES / "ingest_pipelines").glob("*.json")}
    produced_by, result = {}, {}

    def calls(body):
        return [proc["pipeline"]["name"] for proc in body["processors"] if "pipeline" in proc]

    def do(name, stack=()):
        assert name not in stack, f"pipeline cycle {stack + (name,)}"
        if name in result:
            return
        for callee in calls(bodies[name]):
            if callee in bodies:
                do(callee, stack + (name,))
        result[name], produced_by[name] = walk_pipeline(name, bodies[name], produced_by)
    for n in sorted(bodies):
        do(n)
    return result


def pipeline_used_fields():
    """Fields the ingest pipelines use that must exist upstream or in the mappings: what each
    pipeline neither produces itself (reads) nor removes again (writes), less document
    metadata and the documented raw-event inputs (RAW_EVENT_INPUTS, reads only)."""
    used = []
    for name, accesses in pipeline_accesses().items():
        kind = name.split("-")[1]
        for role, f, where, ok in accesses:
            if ok or is_metadata(f) or (role == "read" and f in RAW_EVENT_INPUTS):
                continue
            assert f, f"{where}: an empty field name"
            used.append((kind, f, where, False))
    return used


def test_pipeline_field_collector():
    """The collector sees what each processor kind reads and writes, in order."""
    body = {"processors": [
        {"set": {"field": "_tmp.a", "copy_from": "message"}},
        {"script": {"source": "if (ctx._tmp == null) { ctx._tmp = [:]; } ctx._tmp.b = ctx.tags.size(); ctx.remove('x'); ctx.keySet();"}},
        {"grok": {"field": "_tmp.a", "patterns": ["%{INT:_tmp.n:int} %{WORD:url.path}"], "if": {"source": "ctx._tmp?.b != null"}}},
        {"dissect": {"field": "_tmp.c", "pattern": "%{} %{?skip} %{log.level->} %{+log.level}"}},
        {"rename": {"field": "seq", "target_field": "oxibeat.seq"}},
        {"reroute": {"if": {"source": "ctx._index != 'x'"}, "dataset": "{{data_stream.dataset}}"}},
        {"remove": {"field": "_tmp"}}]}
    acc, left = walk_pipeline("t", body, {})
    got = {(r, f, ok) for r, f, _, ok in acc}
    assert ("read", "_tmp.a", True) in got and ("read", "_tmp.b", True) in got, got
    assert ("read", "_tmp.c", False) in got, "read before anything produced it"
    assert ("read", "_tmp", True) in got and ("write", "_tmp.n", True) in got, "temporary: removed at the end"
    assert ("write", "url.path", False) in got and ("write", "log.level", False) in got
    assert ("read", "seq", False) in got and ("read", "tags", False) in got
    assert ("read", "data_stream.dataset", False) in got and ("read", "_index", False) in got
    assert all(f for _, f, _ in got), "no empty field name (ctx.remove(...), ctx.keySet())"
    assert not any(f.startswith("skip") for _, f, _ in got)
    assert left == {"url.path", "log.level", "oxibeat.seq"}, left
    assert is_metadata("_index") and is_metadata("_ingest.timestamp") and not is_metadata("_tmp")
    # geoip without properties writes the database's defaults; with them, only those.
    acc, _ = walk_pipeline("t", {"processors": [
        {"geoip": {"field": "source.ip", "target_field": "source.geo"}},
        {"geoip": {"field": "source.ip", "target_field": "source.as", "database_file": "GeoLite2-ASN.mmdb",
                   "properties": ["asn"]}}]}, {})
    writes = {f for r, f, _, _ in acc if r == "write"}
    assert writes == {f"source.geo.{p}" for p in GEOIP_DEFAULTS["City"]} | {"source.as.asn"}, writes


def test_field_check_finds_geoip_asn_names_that_are_not_ecs():
    """The check means something: without its renames, oxibeat-logs-parse's ASN lookup would
    leave geoip's own names (source.as.asn, source.as.organization_name), which are neither
    ECS nor mapped, where ECS and our template have source.as.number and
    source.as.organization.name (Filebeat's nginx module pipeline renames them the same way)."""
    body = load_json(ES / "ingest_pipelines" / "oxibeat-logs-parse.json")
    assert {"source.as.number", "source.as.organization.name"} <= set(mapped_fields("logs"))
    acc, _ = walk_pipeline("oxibeat-logs-parse", body, {})
    assert not [f for r, f, _, ok in acc if r == "write" and not ok and not exists("logs", f)]
    body["processors"] = [p for p in body["processors"] if not p.get("rename", {}).get("tag", "").startswith("nginx_as")]
    acc, _ = walk_pipeline("oxibeat-logs-parse", body, {})
    bad = {f for r, f, _, ok in acc if r == "write" and not ok and not exists("logs", f)}
    assert bad == {"source.as.asn", "source.as.organization_name"}, bad


def exists(kind, field):
    """Mapped for `kind` or produced upstream; objects count as existing when a subfield does
    (ctx.log in a script)."""
    known = set(mapped_fields(kind)) | upstream(kind)
    return field in known or any(f.startswith(field + ".") for f in known)


def test_every_used_field_exists_in_templates_or_is_produced_upstream():
    """One check across all assets: each field a Kibana object, an ML job or datafeed, or an
    ingest pipeline uses is mapped by our templates for that data (aggregated fields must be),
    or produced upstream: the Logstash pipeline, the agent's event shape, Metricbeat names."""
    used = kibana_used_fields() + ml_used_fields() + pipeline_used_fields()
    assert len(used) > 50, "the collectors found the fields"
    raw_reads = {f for acc in pipeline_accesses().values() for r, f, _, ok in acc if r == "read" and not ok}
    assert set(RAW_EVENT_INPUTS) <= raw_reads, f"RAW_EVENT_INPUTS lists what no pipeline reads: {set(RAW_EVENT_INPUTS) - raw_reads}"
    problems = []
    for kind, field, where, agg in used:
        if kind == "ml-results":
            if field not in ML_RESULT_FIELDS:
                problems.append(f"{where}: {field} is not a field of ML results")
            continue
        mapped = mapped_fields(kind)
        if agg:
            if field not in mapped:
                problems.append(f"{where}: {field} is aggregated but not mapped for {kind} in elasticsearch/component_templates")
            elif mapped[field] in ("text", "match_only_text", "semantic_text", "object"):
                problems.append(f"{where}: {field} is aggregated but mapped as {mapped[field]}")
        elif not exists(kind, field):
            problems.append(f"{where}: {field} is neither mapped for {kind} nor produced upstream")
    assert not problems, "\n".join(problems)


def test_parsed_fields_are_mapped():
    """What Logstash extracts from nginx/app lines has an explicit mapping (numbers stay numbers)."""
    mapped = mapped_fields("logs")
    for f in ("http.response.status_code", "http.response.body.bytes", "oxibeat.seq", "source.ip",
              "source.geo.location", "url.path", "log.level", "log.logger", "error.type", "error.stack_trace"):
        assert f in logstash_produced("logs.conf"), f
        assert f in mapped, f
    assert mapped["http.response.status_code"] == "long"
    assert mapped["source.geo.location"] == "geo_point"


def test_metric_fields_in_templates_match_metricbeat_names():
    ref = SHARED / "filebeat-reference"
    if not ref.is_dir():
        pytest.skip(f"SKIPPED: {ref} is absent")
    mb = metricbeat_fields()
    mapped = mapped_fields("metrics")
    unknown = [f for f in mapped if f.startswith("system.") and f not in mb]
    assert not unknown, unknown


# --------------------------------------------------------------------------- compose

def test_compose_file_validates_against_the_compose_specification(tmp_path):
    """check-jsonschema ships the compose specification's JSON schema (vendor.compose-spec)."""
    pytest.importorskip("check_jsonschema", reason="pip install check-jsonschema")
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                        str(ROOT / "elk-compose.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad-compose.yml"
    bad.write_text("services:\n  x:\n    image: 3\n    depends_on: {y: {condition: nope}}\n")
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                        str(bad)], capture_output=True, text=True)
    assert r.returncode != 0, "the schema check rejects a broken file"


def test_compose_wiring():
    c = yaml.safe_load((ROOT / "elk-compose.yml").read_text())
    svcs = c["services"]
    for s in ("kafka", "kafka-topics", "elasticsearch", "es-init", "kibana", "oxibeat-setup", "logstash", "loggen", "oxibeat"):
        assert s in svcs, s
    for name, s in svcs.items():
        for dep in (s.get("depends_on") or {}):
            assert dep in svcs, (name, dep)
        img = s.get("image", "")
        if "docker.elastic.co" in img:
            assert img.endswith(":${STACK_VERSION:?set STACK_VERSION in .env}"), img
        if s.get("restart") != "no" and name not in ("loggen", "oxibeat"):
            assert "healthcheck" in s, name
    assert svcs["kibana"]["depends_on"]["es-init"]["condition"] == "service_completed_successfully"
    assert svcs["logstash"]["depends_on"]["oxibeat-setup"]["condition"] == "service_completed_successfully"
    env = svcs["elasticsearch"]["environment"]
    assert "xpack.security.enabled=true" in env and "xpack.security.http.ssl.enabled=false" in env
    assert any(e.startswith("xpack.license.self_generated.type=") for e in env)
    for s in ("elasticsearch", "kibana", "logstash"):
        assert "mem_limit" in svcs[s], s


def test_stack_version_is_pinned_in_one_place():
    env = dict(l.split("=", 1) for l in (ROOT / ".env.example").read_text().splitlines()
               if l and not l.startswith("#"))
    assert re.fullmatch(r"9\.2\.\d+", env["STACK_VERSION"]), env["STACK_VERSION"]
    offenders = []
    for p in ROOT.rglob("*"):
        if not p.is_file() or any(part in (".git", "target", "tests") for part in p.relative_to(ROOT).parts):
            continue
        if p.suffix in (".yml", ".yaml", ".toml", ".conf", ".sh") or p.name == "Dockerfile":
            if re.search(r"(elasticsearch|kibana|logstash):9\.\d+\.\d+", p.read_text(errors="ignore")):
                offenders.append(str(p))
    assert not offenders, offenders


# --------------------------------------------------------------------------- compose startup

def compose():
    return yaml.safe_load((ROOT / "elk-compose.yml").read_text())


def deps(svc):
    d = svc.get("depends_on") or {}
    if isinstance(d, list):
        return {k: "service_started" for k in d}
    return {k: v.get("condition", "service_started") for k, v in d.items()}


def needs_at_runtime(name, svc):
    """Services whose work a one-shot needs while it runs. `oxibeat setup` needs
    Elasticsearch; --dashboards needs Kibana; ML (no flag, or --ml) needs data in the data
    streams, that is Logstash and the agent running, since datafeeds start only on mapped data."""
    cmd = svc.get("command") or []
    text = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    if "setup" not in text:
        return set()
    flags = set(re.findall(r"--[a-z-]+", text))
    parts = flags & {"--index-management", "--pipelines", "--ml", "--dashboards"}
    out = set()
    if not parts or parts & {"--index-management", "--pipelines", "--ml"}:
        out.add("elasticsearch")
    if not parts or "--dashboards" in parts:
        out.add("kibana")
    if not parts or "--ml" in parts:
        out |= {"logstash", "oxibeat"}
    return out


def check_startup(c):
    """Problems with the depends_on graph: unknown services, conditions a service cannot meet,
    cycles, and one-shots that need a service which itself waits for the one-shot."""
    svcs = c["services"]
    problems = []
    graph = {n: deps(s) for n, s in svcs.items()}
    for n, d in graph.items():
        for dep, cond in d.items():
            if dep not in svcs:
                problems.append(f"{n} depends on unknown {dep}")
            elif cond == "service_healthy" and "healthcheck" not in svcs[dep]:
                problems.append(f"{n} waits for {dep} to be healthy, but {dep} has no healthcheck")
            elif cond == "service_completed_successfully" and svcs[dep].get("restart", "no") != "no":
                problems.append(f"{n} waits for {dep} to complete, but {dep} restarts")
            elif cond not in ("service_started", "service_healthy", "service_completed_successfully"):
                problems.append(f"{n}: unknown condition {cond}")

    def closure(n, seen=None):
        seen = set() if seen is None else seen
        for d in graph.get(n, {}):
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen

    for n in graph:
        if n in closure(n):
            problems.append(f"dependency cycle through {n}")
    for n, s in svcs.items():
        for need in needs_at_runtime(n, s):
            if need not in svcs:
                continue
            if n in closure(need):
                problems.append(f"deadlock: {n} needs {need}, which waits for {n}")
            elif need not in closure(n):
                problems.append(f"{n} needs {need} but does not wait for it")
    return problems


def test_every_compose_service_can_start():
    problems = check_startup(compose())
    assert not problems, problems


def test_startup_check_finds_the_old_setup_deadlock():
    """The graph check means something: one `oxibeat setup` (ML included) that Logstash waits
    for, as elk-compose.yml had it, is a deadlock (datafeeds need data only Logstash writes)."""
    c = compose()
    c["services"]["oxibeat-setup"]["command"] = ["setup", "-c", "/etc/oxibeat/oxibeat-setup.toml"]
    c["services"]["oxibeat-setup"]["depends_on"] = {"kibana": {"condition": "service_healthy"}}
    problems = check_startup(c)
    assert any("deadlock: oxibeat-setup needs logstash" in p for p in problems), problems
    c = compose()
    c["services"]["es-init"]["depends_on"]["kibana"] = {"condition": "service_healthy"}
    assert any("cycle" in p for p in check_startup(c))


def test_logstash_waits_only_for_index_management_and_pipelines():
    s = compose()["services"]
    assert deps(s["logstash"]) == {"kafka-topics": "service_completed_successfully",
                                   "oxibeat-setup": "service_completed_successfully"}
    assert needs_at_runtime("oxibeat-setup", s["oxibeat-setup"]) == {"elasticsearch"}
    assert "setup.semantic.enabled=${SEMANTIC_SEARCH:-false}" in s["oxibeat-setup"]["command"], "semantic is opt-in"
    assert {"logstash", "oxibeat"} <= needs_at_runtime("oxibeat-ml", s["oxibeat-ml"])


def test_kafka_keeps_its_data_and_fits_its_memory_limit():
    k = compose()["services"]["kafka"]
    env = k["environment"]
    mount = next(v.split(":")[1] for v in k["volumes"] if v.startswith("kafkadata:"))
    assert env["KAFKA_LOG_DIRS"] == mount, "the image's default is /tmp/kraft-combined-logs"
    assert re.search(r"-Xmx512m", env["KAFKA_HEAP_OPTS"])
    probe = k["healthcheck"]["test"]
    assert "kafka-" not in " ".join(probe), "no JVM tool in the healthcheck"


def test_kafka_healthcheck_speaks_the_kafka_protocol(tmp_path):
    """The healthcheck sends an ApiVersions v0 request and wants correlation id 1 and error
    code 0 back. Run it (with bash, head, od, tr, timeout of this machine) against a socket that
    checks the request bytes and answers like a broker, and against one that never answers."""
    import socketserver
    import threading
    import struct

    script = compose()["services"]["kafka"]["healthcheck"]["test"][3].replace("$$", "$")
    seen = []

    def serve(answer):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                req = self.request.recv(64)
                seen.append(req)
                size, api_key, version, corr, n = struct.unpack(">ihhih", req[:14])
                ok = size == len(req) - 4 and api_key == 18 and version == 0 and corr == 1 and req[14:14 + n] == b"hc"
                if answer and ok:
                    body = struct.pack(">ihi", corr, 0, 0)
                    self.request.sendall(struct.pack(">i", len(body)) + body)
                time.sleep(0.5)
        srv = socketserver.TCPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    import time
    for answer, want in ((True, 0), (False, 1)):
        srv = serve(answer)
        port = srv.server_address[1]
        r = subprocess.run(["bash", "-c", script.replace("127.0.0.1/9092", f"127.0.0.1/{port}")],
                           capture_output=True, text=True, timeout=20)
        srv.shutdown()
        srv.server_close()
        assert (r.returncode == 0) == (want == 0), (answer, r.returncode, r.stderr)
    assert seen and seen[0][4:6] == b"\x00\x12"


def test_healthchecks_check_overall_state():
    s = compose()["services"]
    kb = s["kibana"]["healthcheck"]["test"][1]
    assert '"status":{"overall":{"level":"available"' in kb, kb
    ls = s["logstash"]["healthcheck"]["test"][1]
    assert "_health_report" in ls and "RUNNING" in ls and "-ge 3" in ls, ls
    assert len(yaml.safe_load((LS / "config" / "pipelines.yml").read_text())) == 3


# --------------------------------------------------------------------------- small fixes

@pytest.mark.parametrize("name", ["logs.conf", "metrics.conf"])
def test_redelivered_duplicates_are_not_logged(name):
    assert 'silence_errors_in_log => ["version_conflict_engine_exception"]' in conf_text(name)


def test_nginx_dates_parse_with_english_month_names():
    block = re.search(r'date \{\s*id => "nginx_date".*?\}', conf_text("logs.conf"), re.S).group(0)
    assert 'locale => "en"' in block, block


def test_index_templates_turn_the_failure_store_off():
    """Failed documents go back to the sender (Logstash's dead letter queue), not to a
    ::failures index nobody reads: logs@settings turns the failure store on, ours off."""
    for kind in ("logs", "metrics"):
        t = load_json(ES / "index_templates" / f"oxibeat-{kind}.json")
        assert t["template"]["data_stream_options"] == {"failure_store": {"enabled": False}}
    ids = {p["pipeline.id"]: p for p in yaml.safe_load((LS / "config" / "pipelines.yml").read_text())}
    assert ids["logs"]["dead_letter_queue.enable"] and ids["metrics"]["dead_letter_queue.enable"]


def test_no_root_mapping_type():
    for p in (ES / "component_templates").glob("*.json"):
        assert "type" not in load_json(p)["template"].get("mappings", {}), p.name
    assert load_json(ES / "component_templates" / "oxibeat-logs-mappings.json")["template"]["mappings"]["properties"]["message"] == {"type": "match_only_text"}


def test_dashboard_panels_do_not_overlap():
    for o in kibana_objects():
        if o["type"] != "dashboard":
            continue
        boxes = [(p["panelIndex"], p["gridData"]) for p in json.loads(o["attributes"]["panelsJSON"])]
        for i, (a, g) in enumerate(boxes):
            assert g["x"] + g["w"] <= 48, (o["id"], a)
            for b, h in boxes[i + 1:]:
                apart = (g["x"] + g["w"] <= h["x"] or h["x"] + h["w"] <= g["x"]
                         or g["y"] + g["h"] <= h["y"] or h["y"] + h["h"] <= g["y"])
                assert apart, (o["id"], a, b)


@pytest.mark.parametrize("password", ['plain', 'with "quotes" and \\ backslash', "new\nline\tand $dollar `tick`", "é ü"])
def test_es_init_sends_valid_json_whatever_the_password(tmp_path, password):
    """es-init.sh against a small HTTP server that records its requests."""
    import http.server
    import threading

    got = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            got.append((self.command, self.path, body))
            out = b'{"status":"green"}' if self.path.startswith("/_cluster") else b'{"acknowledged":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = _answer

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ, ES_URL=f"http://127.0.0.1:{srv.server_address[1]}", ELASTIC_PASSWORD="x",
               KIBANA_SYSTEM_PASSWORD=password, LOGSTASH_WRITER_USER="logstash_writer",
               LOGSTASH_WRITER_PASSWORD=password + "-2", LC_ALL="C.UTF-8")
    r = subprocess.run(["bash", str(ES / "es-init.sh")], env=env, capture_output=True, text=True, timeout=30)
    srv.shutdown()
    srv.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    bodies = {p: json.loads(b) for m, p, b in got if m in ("PUT", "POST")}
    assert bodies["/_security/user/kibana_system/_password"] == {"password": password}
    assert bodies["/_security/user/logstash_writer"]["password"] == password + "-2"
    assert bodies["/_security/role/oxibeat_logstash_writer"]["indices"][0]["privileges"] == ["create_doc", "auto_configure"]
