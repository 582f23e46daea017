"""Rebuild ``etsy_v3_operations.json`` from the npm package ``etsy-ts``.

No package on PyPI or npm ships Etsy's OpenAPI document itself (checked: etsy-ts 8.0.1,
etsy-python 1.2.3, etsyv3 0.0.7, etsy-py-dev 0.0.2). ``etsy-ts`` is generated from it
(swagger-typescript-api on ``https://www.etsy.com/openapi/generated/oas/3.0.0.json``) and keeps,
per operation: the method and path (``@request`` comments), the body content type, and the
request types (``I<Operation>Payload`` / ``I<Operation>Params`` in ``data-contracts.d.ts``) with
required and optional fields and enum literals. This script reads those back into a small
table for the request-shape test. Usage::

    cd /tmp && npm pack etsy-ts@8.0.1 && tar xzf etsy-ts-8.0.1.tgz
    cd tests/data/etsy_openapi && python extract.py /tmp/package > etsy_v3_operations.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_CONTENT = {
    "Json": "application/json",
    "FormData": "multipart/form-data",
    "UrlEncoded": "application/x-www-form-urlencoded",
    "Text": "text/plain",
}
_OP_RE = re.compile(
    r"@name (?P<Name>\w+)\s*\n\s*\*\s*@request (?P<method>[A-Z]+):(?P<path>\S+).*?"
    r"this\.(?P<name>\w+) = function.*?"
    r"_this\.http\.request\(tslib_1\.__assign\(\{(?P<opts>[^}]*)\}",
    re.S,
)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def _interface(text: str, name: str) -> str | None:
    start = text.find(f"export interface {name} {{")
    if start < 0:
        return None
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    raise ValueError(f"unbalanced interface {name}")


def _split_fields(body: str) -> list[tuple[str, bool, str]]:
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields: list[tuple[str, bool, str]] = []
    i = 0
    while True:
        m = re.compile(r"\s*(\w+)(\?)?:\s*").match(body, i)
        if m is None:
            break
        depth = 0
        j = m.end()
        while j < len(body):
            c = body[j]
            if c in "{([<":
                depth += 1
            elif c in "})]>":
                depth -= 1
            elif c == ";" and depth == 0:
                break
            j += 1
        fields.append((m.group(1), m.group(2) is None, body[m.end() : j].strip()))
        i = j + 1
    return fields


def _type(text: str) -> dict[str, Any]:
    text = text.strip()
    alts = [a.strip() for a in _top_split(text, "|")]
    nullable = "null" in alts
    alts = [a for a in alts if a != "null"]
    out: dict[str, Any] = {"nullable": True} if nullable else {}
    if alts and all(re.fullmatch(r'"[^"]*"', a) for a in alts):
        return {**out, "type": "string", "enum": [a[1:-1] for a in alts]}
    if len(alts) == 1:
        t = alts[0]
        if t.endswith("[]"):
            inner = t[:-2].strip()
            if inner.startswith("(") and inner.endswith(")"):
                inner = inner[1:-1]
            return {**out, "type": "array", "items": _type(inner)}
        if t.startswith("{") and t.endswith("}"):
            return {**out, "type": "object", "fields": _fields(t[1:-1])}
        if t in ("number", "string", "boolean"):
            return {**out, "type": t}
        if t == "Readable":
            return {**out, "type": "binary"}
        return {**out, "type": "any", "ts": t}
    return {**out, "type": "any", "ts": text}


def _top_split(text: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in text:
        if c in "{([<":
            depth += 1
        elif c in "})]>":
            depth -= 1
        if c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def _fields(body: str) -> dict[str, Any]:
    return {name: {"required": req, **_type(t)} for name, req, t in _split_fields(body)}


def extract(package: Path) -> dict[str, Any]:
    contracts = (package / "dist/api/data-contracts.d.ts").read_text(encoding="utf-8")
    version = json.loads((package / "package.json").read_text(encoding="utf-8"))["version"]
    ops: dict[str, Any] = {}
    for js in sorted((package / "dist/api").glob("*.js")):
        for m in _OP_RE.finditer(js.read_text(encoding="utf-8")):
            opts = m.group("opts")
            ctype = re.search(r"ContentType\.(\w+)", opts)
            path = m.group("path")
            path_params = re.findall(r"\{(\w+)\}", path)
            entry: dict[str, Any] = {
                "method": m.group("method"),
                "path": path,
                "path_params": path_params,
                "content_type": _CONTENT[ctype.group(1)] if ctype else None,
                "query": {},
                "body": None,
            }
            params = _interface(contracts, f"I{m.group('Name')}Params")
            if params is not None and "query" in opts:
                camel = {_camel(p) for p in path_params}
                entry["query"] = {k: v for k, v in _fields(params).items() if k not in camel}
            payload = _interface(contracts, f"I{m.group('Name')}Payload")
            if payload is not None and "body:" in opts:
                entry["body"] = _fields(payload)
            ops[m.group("name")] = entry
    return {
        "source": f"npm etsy-ts@{version} (generated from Etsy's OpenAPI 3.0.0 document)",
        "operations": dict(sorted(ops.items())),
    }


if __name__ == "__main__":
    json.dump(extract(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
