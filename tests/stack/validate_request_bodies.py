#!/usr/bin/env python3
"""Check request bodies of `oxibeat search` against Elasticsearch's 9.2 OpenAPI spec, with the
spec loading of ../shared/tools/validate-es-assets (which matches PUT bodies by shape; these are
POST bodies of known paths).

usage: validate_request_bodies.py DIR   (DIR holds *.json files {"path": "/{index}/_search",
       "method": "post", "body": {...}, "expect": "ok" | "off"}); exit 1 if any file's result
       differs from its "expect".
"""
import importlib.machinery
import importlib.util
import json
import pathlib
import sys

from openapi_schema_validator import OAS30Validator

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT.parent / "shared" / "tools" / "validate-es-assets"


def load_tool():
    loader = importlib.machinery.SourceFileLoader("validate_es_assets", str(TOOL))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def errors(spec, path, method, body, user_values):
    rb = spec["paths"][path][method]["requestBody"]
    while "$ref" in rb:
        o = spec
        for p in rb["$ref"].lstrip("#/").split("/"):
            o = o[p]
        rb = o
    sch = dict(rb["content"]["application/json"]["schema"])
    sch["components"] = spec["components"]
    out = []
    for e in OAS30Validator(sch).iter_errors(body):
        if "is not of type 'object'" in e.message and e.path and e.path[-1] in user_values:
            continue
        out.append(f"{list(e.path)}: {e.message[:200]}")
    return out


def main():
    tool = load_tool()
    spec = tool.anyof(json.load(open(tool.SPEC)))
    bad = 0
    files = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
    for f in files:
        case = json.loads(f.read_text())
        errs = errors(spec, case["path"], case["method"], case["body"], tool.USER_VALUES)
        got = "ok" if not errs else "off"
        mark = "ok   " if got == case["expect"] else "WRONG"
        print(f"{mark} {f.name}: {got} ({case['method'].upper()} {case['path']})")
        for e in errs[:5]:
            print("      ", e)
        bad += got != case["expect"]
    print(f"{len(files)} bodies, {bad} not as expected")
    sys.exit(1 if bad or not files else 0)


if __name__ == "__main__":
    main()
