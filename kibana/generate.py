#!/usr/bin/env python3
"""Writes kibana/oxibeat.ndjson, the saved objects `oxibeat setup --dashboards` imports.

Edit this file, run `python3 kibana/generate.py`, commit both. tests/stack/test_assets.py fails
when the NDJSON is not what this script writes. Visualisations are aggregation-based
(`visualization` objects), the geo map is a Maps `map` object, the anomaly swim lane an ML
embeddable, all referenced from dashboards; object ids are stable so re-imports overwrite.
"""
import json
import pathlib

CORE = "8.8.0"
TYPE_VERSIONS = {
    "index-pattern": "8.0.0",
    "visualization": "8.5.0",
    "search": "10.5.0",
    "dashboard": "10.3.0",
    "map": "8.4.0",
}
LOGS = "oxibeat-logs"
METRICS = "oxibeat-metrics"
ANOMALIES = "oxibeat-ml-anomalies"
ML_JOBS = ["oxibeat-log-rate", "oxibeat-log-categories", "oxibeat-host-metrics"]

objects = []


def obj(typ, oid, attributes, references=()):
    objects.append({
        "attributes": attributes,
        "coreMigrationVersion": CORE,
        "id": oid,
        "managed": False,
        "references": list(references),
        "type": typ,
        "typeMigrationVersion": TYPE_VERSIONS[typ],
    })


def data_view(oid, title, name, time_field="@timestamp"):
    obj("index-pattern", oid, {
        "name": name,
        "title": title,
        "timeFieldName": time_field,
        "allowNoIndex": True,
        "fieldAttrs": "{}",
        "fieldFormatMap": "{}",
        "runtimeFieldMap": "{}",
        "sourceFilters": "[]",
    })


def search_source(query="", filters=()):
    return json.dumps({
        "query": {"query": query, "language": "kuery"},
        "filter": list(filters),
        "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index",
    })


def index_ref(view):
    return {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": view}


def agg(aid, typ, schema, **params):
    return {"id": str(aid), "enabled": True, "type": typ, "schema": schema, "params": params}


def date_hist(aid="2", field="@timestamp"):
    return agg(aid, "date_histogram", "segment", field=field, interval="auto",
               min_doc_count=1, extended_bounds={}, useNormalizedEsInterval=True, scaleMetricValues=False)


def terms(aid, field, schema="group", size=10):
    return agg(aid, "terms", schema, field=field, size=size, order="desc", orderBy="1",
               otherBucket=False, missingBucket=False)


def xy(kind, title, aggs, view, query="", value_label="Count", stacked=True):
    series_mode = "stacked" if stacked else "normal"
    params = {
        "type": kind,
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "addTimeMarker": False,
        "grid": {"categoryLines": False},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom", "show": True,
                          "scale": {"type": "linear"}, "labels": {"show": True, "filter": True, "truncate": 100},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value", "position": "left", "show": True,
                       "scale": {"type": "linear", "mode": "normal"},
                       "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                       "title": {"text": value_label}}],
        "seriesParams": [{"show": True, "type": "area" if kind == "area" else ("histogram" if kind == "histogram" else "line"),
                          "mode": series_mode, "data": {"label": value_label, "id": "1"},
                          "valueAxis": "ValueAxis-1", "drawLinesBetweenPoints": True, "showCircles": True,
                          "lineWidth": 2}],
        "times": [],
        "thresholdLine": {"show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
    }
    return vis(title, kind, params, aggs, view, query)


def vis(title, kind, params, aggs, view, query=""):
    oid = "oxibeat-vis-" + "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
    while "--" in oid:
        oid = oid.replace("--", "-")
    obj("visualization", oid, {
        "title": title,
        "description": "",
        "uiStateJSON": "{}",
        "version": 1,
        "visState": json.dumps({"title": title, "type": kind, "params": params, "aggs": aggs}),
        "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
    }, [index_ref(view)])
    return ("visualization", oid)


def table(title, aggs, view, query=""):
    return vis(title, "table", {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False,
                                "showTotal": False, "totalFunc": "sum", "percentageCol": ""}, aggs, view, query)


def pie(title, aggs, view, query=""):
    return vis(title, "pie", {"type": "pie", "addTooltip": True, "legendPosition": "right", "isDonut": True,
                              "legendDisplay": "show", "nestedLegend": False, "truncateLegend": True,
                              "maxLegendLines": 1, "distinctColors": True,
                              "labels": {"show": True, "values": True, "last_level": True, "truncate": 100}},
               aggs, view, query)


def count(aid="1"):
    return agg(aid, "count", "metric")


def metric(aid, typ, field):
    return agg(aid, typ, "metric", field=field)


def derivative_of_max(aid, field):
    return {"id": str(aid), "enabled": True, "type": "derivative", "schema": "metric",
            "params": {"metricAgg": "custom",
                       "customMetric": {"id": f"{aid}-metric", "enabled": True, "type": "max", "params": {"field": field}}}}


def saved_search(oid, title, query, columns):
    obj("search", oid, {
        "title": title,
        "description": "",
        "columns": columns,
        "sort": [["@timestamp", "desc"]],
        "grid": {},
        "hideChart": False,
        "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
    }, [index_ref(LOGS)])
    return ("search", oid)


def layout(wide_flags, h=15):
    """Grid positions (x, y, w) for panels in order: narrow ones two per row, a wide one
    (a saved search or a map) on a row of its own, starting a new row when the row is half
    full. Returns the positions and the first free row."""
    out, x, y = [], 0, 0
    for wide in wide_flags:
        if wide:
            if x:
                x, y = 0, y + h
            out.append((0, y, 48))
            y += h
        else:
            out.append((x, y, 24))
            x, y = (24, y) if x == 0 else (0, y + h)
    return out, (y + h if x else y)


def dashboard(oid, title, description, panels, extra_panels=()):
    """panels: list of (type, id) saved-object references, laid out by `layout`."""
    panel_json = []
    refs = []
    grid, y = layout([typ in ("search", "map") for typ, _ in panels])
    for n, ((typ, ref_id), (gx, gy, gw)) in enumerate(zip(panels, grid)):
        pid = f"p{n + 1}"
        panel_json.append({
            "type": typ,
            "panelIndex": pid,
            "gridData": {"x": gx, "y": gy, "w": gw, "h": 15, "i": pid},
            "embeddableConfig": {"enhancements": {}},
            "panelRefName": f"panel_{pid}",
        })
        refs.append({"name": f"{pid}:panel_{pid}", "type": typ, "id": ref_id})
    for m, p in enumerate(extra_panels):
        pid = f"x{m + 1}"
        p = dict(p)
        p["panelIndex"] = pid
        p["gridData"] = {"x": 0, "y": y + m * 15, "w": 48, "h": 15, "i": pid}
        panel_json.append(p)
    obj("dashboard", oid, {
        "title": title,
        "description": description,
        "panelsJSON": json.dumps(panel_json),
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                   "syncTooltips": False, "hidePanelTitles": False}),
        "timeRestore": True,
        "timeFrom": "now-24h",
        "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60000},
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})},
    }, refs)


# Data views
data_view(LOGS, "logs-oxibeat.*-*", "oxibeat logs")
data_view(METRICS, "metrics-oxibeat.*-*", "oxibeat metrics")
# ML results carry their time in `timestamp`, not `@timestamp`.
data_view(ANOMALIES, ".ml-anomalies-*", "oxibeat ML anomalies", "timestamp")

# Saved searches
errors = saved_search("oxibeat-search-errors", "oxibeat errors", "log.level : (\"error\" or \"critical\")",
                      ["host.name", "service.name", "log.level", "oxibeat.error_class", "message"])
log_table = saved_search("oxibeat-search-logs", "oxibeat log table", "",
                         ["host.name", "data_stream.dataset", "log.level", "message"])

# Logs overview
rate_ds = xy("area", "Log rate by dataset", [count(), date_hist(), terms(3, "data_stream.dataset")], LOGS)
rate_lvl = xy("histogram", "Log rate by level", [count(), date_hist(), terms(3, "log.level")], LOGS)
top_err = table("Top errors", [count(), terms(2, "oxibeat.error_class", "bucket"), terms(3, "service.name", "bucket"),
                               terms(4, "log.logger", "bucket")], LOGS, "log.level : (\"error\" or \"critical\")")
dashboard("oxibeat-dashboard-logs", "[oxibeat] Logs overview",
          "Log rate by dataset and level, top errors and the latest lines.",
          [rate_ds, rate_lvl, top_err, errors, log_table])

# Web traffic
NGINX = "data_stream.dataset : \"oxibeat.nginx\""
status = xy("histogram", "HTTP status codes over time", [count(), date_hist(), terms(3, "http.response.status_code")], LOGS, NGINX)
urls = table("Top URLs", [count(), terms(2, "url.path", "bucket", 20), metric(3, "sum", "http.response.body.bytes")], LOGS, NGINX)
agents = pie("User agents", [count(), terms(2, "user_agent.name", "segment"), terms(3, "user_agent.os.name", "segment")], LOGS, NGINX)
methods = pie("HTTP methods", [count(), terms(2, "http.request.method", "segment")], LOGS, NGINX)
obj("map", "oxibeat-map-clients", {
    "title": "Web clients by location",
    "description": "nginx clients, located with the geoip filter of Logstash",
    "mapStateJSON": json.dumps({"zoom": 1.2, "center": {"lon": 0, "lat": 20},
                                "timeFilters": {"from": "now-24h", "to": "now"},
                                "refreshConfig": {"isPaused": True, "interval": 0},
                                "query": {"query": NGINX, "language": "kuery"}, "filters": [],
                                "settings": {"autoFitToDataBounds": False}}),
    "layerListJSON": json.dumps([
        {"id": "basemap", "label": None, "minZoom": 0, "maxZoom": 24, "alpha": 1, "visible": True,
         "type": "EMS_VECTOR_TILE", "sourceDescriptor": {"type": "EMS_TMS", "isAutoSelect": True, "lightModeDefault": "road_map_desaturated"},
         "style": {"type": "EMS_VECTOR_TILE"}},
        {"id": "clients", "label": "Clients", "minZoom": 0, "maxZoom": 24, "alpha": 0.75, "visible": True,
         "type": "GEOJSON_VECTOR", "joins": [],
         "sourceDescriptor": {"type": "ES_GEO_GRID", "id": "clients-grid", "geoField": "source.geo.location",
                              "requestType": "point", "resolution": "COARSE", "metrics": [{"type": "count"}],
                              "applyGlobalQuery": True, "applyGlobalTime": True,
                              "indexPatternRefName": "layer_1_source_index_pattern"},
         "style": {"type": "VECTOR", "properties": {}, "isTimeAware": True}},
    ]),
    "uiStateJSON": json.dumps({"isLayerTOCOpen": True, "openTOCDetails": []}),
}, [{"name": "layer_1_source_index_pattern", "type": "index-pattern", "id": LOGS}])
dashboard("oxibeat-dashboard-web", "[oxibeat] Web traffic",
          "nginx access logs: status codes, top URLs, client locations and user agents.",
          [status, urls, agents, methods, ("map", "oxibeat-map-clients")])

# Host metrics
def per_host(title, field, dataset, label):
    return xy("line", title, [metric(1, "avg", field), date_hist(), terms(3, "host.name")], METRICS,
              f"event.dataset : \"{dataset}\"", label, stacked=False)


cpu = per_host("CPU usage per host", "system.cpu.total.norm.pct", "system.cpu", "CPU (normalised)")
mem = per_host("Memory usage per host", "system.memory.actual.used.pct", "system.memory", "Memory used")
load = xy("line", "Load average", [metric(1, "avg", "system.load.1"), metric(4, "avg", "system.load.5"),
                                   metric(5, "avg", "system.load.15"), date_hist(), terms(3, "host.name")],
          METRICS, "event.dataset : \"system.load\"", "Load", stacked=False)
net_in = xy("line", "Network in per host (bytes)", [derivative_of_max(1, "system.network.in.bytes"), date_hist(), terms(3, "host.name")],
            METRICS, "event.dataset : \"system.network\"", "Bytes", stacked=False)
net_out = xy("line", "Network out per host (bytes)", [derivative_of_max(1, "system.network.out.bytes"), date_hist(), terms(3, "host.name")],
             METRICS, "event.dataset : \"system.network\"", "Bytes", stacked=False)
disk = table("Disk usage per host and mount point", [metric(1, "max", "system.filesystem.used.pct"),
                                                    terms(2, "host.name", "bucket"), terms(3, "system.filesystem.mount_point", "bucket")],
             METRICS, "event.dataset : \"system.filesystem\"")
diskio = xy("line", "Disk writes per host (bytes)", [derivative_of_max(1, "system.diskio.write.bytes"), date_hist(), terms(3, "host.name")],
            METRICS, "event.dataset : \"system.diskio\"", "Bytes", stacked=False)
dashboard("oxibeat-dashboard-hosts", "[oxibeat] Host metrics",
          "CPU, memory, load, network and disk per host, from oxibeat's system/metrics input.",
          [cpu, mem, load, net_in, net_out, disk, diskio])

# Anomalies
JOBS_Q = "job_id : (" + " or ".join(f"\"{j}\"" for j in ML_JOBS) + ")"
scores = xy("line", "Anomaly score by job", [metric(1, "max", "record_score"), date_hist(field="timestamp"), terms(3, "job_id")],
            ANOMALIES, f"result_type : \"record\" and {JOBS_Q}", "Max record score", stacked=False)
top_anom = table("Top anomalies", [metric(1, "max", "record_score"), terms(2, "job_id", "bucket"),
                                   terms(3, "partition_field_value", "bucket"), terms(4, "function", "bucket")],
                 ANOMALIES, f"result_type : \"record\" and record_score >= 50 and {JOBS_Q}")
swimlane = {
    "type": "ml_anomaly_swimlane",
    "embeddableConfig": {"jobIds": ML_JOBS, "swimlaneType": "overall",
                         "title": "oxibeat anomalies", "enhancements": {}},
    "title": "oxibeat anomalies",
}
dashboard("oxibeat-dashboard-anomalies", "[oxibeat] Anomalies",
          "Results of the oxibeat ML jobs: log rate, log categories, host CPU and memory.",
          [scores, top_anom], [swimlane])

out = pathlib.Path(__file__).resolve().parent / "oxibeat.ndjson"
text = "".join(json.dumps(o, sort_keys=True, separators=(",", ":")) + "\n" for o in objects)
if __name__ == "__main__":
    out.write_text(text)
    print(f"wrote {len(objects)} objects to {out}")
