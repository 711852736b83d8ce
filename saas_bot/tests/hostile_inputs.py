"""Hypothesis strategies for hostile input: the webhook's update bodies and API request values.

Test support (used by tests and ``bench/hostile_probe.py``), never imported by product code. The strings
are the ones careless clients and attackers send: unpaired UTF-16 surrogates (a text cut inside an emoji),
NUL, bidi overrides, formula prefixes, escapes, huge numbers, deep nesting.
"""
from __future__ import annotations

import json

from hypothesis import strategies as st

HOSTILE_STRINGS = ["\ud800", "\udfff", "a\ud83d", "\udc00\ud800", "\x00", "nul\x00byte", "\u202e", "\ufeff",
                   "\\", '"', "\\u0000", "\\ud800", "</script>", "%s%n", "' OR 1=1 --", "=cmd|' /C calc'!A0",
                   "+1", "-1", "@SUM(1)", "\t=1", "\r\n", "🤦🏼‍♂️", "𝕏" * 3, "x" * 5000, "", " ", "null", "NaN",
                   "9" * 400, "-0", "1e999", "../../etc/passwd", "http://[::1", "http://127.0.0.1:99999/"]
# JSON literals Python's json.dumps never writes but a client can send.
RAW_LITERALS = [b"1e999", b"-1e999", b"1e-999", b"9" * 5000, b"-" + b"9" * 40, b"0.1" + b"0" * 3000,
                b"[" * 5000 + b"]" * 5000, b'{"a":' * 600 + b"1" + b"}" * 600, b'"\\u0000"', b'"\\ud800\\u0000"',
                b'"\\udbff\\udbff"', b"18446744073709551616", b"[]", b"{}", b"true", b"null"]

hostile_strings = st.one_of(st.sampled_from(HOSTILE_STRINGS),
                            st.text(st.characters(exclude_categories=()), max_size=20))
numbers = st.one_of(st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(st.none() | st.booleans() | numbers | hostile_strings,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_strings, inner,
                                                                                         max_size=4),
                           max_leaves=12)


@st.composite
def update_bodies(draw) -> bytes:
    """A webhook body: a JSON object with an integer update_id (as Telegram always sends) and hostile
    fields, sometimes a message-like object, sometimes a raw literal, or (one in ten) not an update."""
    update_id = draw(st.integers(min_value=0, max_value=2 ** 63 - 1))
    kind = draw(st.sampled_from(["message", "edited_message", "my_chat_member", "callback_query", "x"]))
    value = draw(st.one_of(json_values, st.fixed_dictionaries(
        {"message_id": numbers, "date": numbers, "text": hostile_strings,
         "chat": st.fixed_dictionaries({"id": numbers, "type": hostile_strings}),
         "from": st.fixed_dictionaries({"id": numbers, "first_name": hostile_strings})})))
    body = json.dumps({"update_id": update_id, kind: value}).encode()
    if draw(st.integers(0, 3)) == 0:
        body = body[:-1] + b', "raw": ' + draw(st.sampled_from(RAW_LITERALS)) + b"}"
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from([json.dumps(draw(json_values)).encode(), b"\xff\xfe", b"{",
                                     b'{"update_id": "1"}', b'{"update_id": 1e3}']))
    return body


HOSTILE_IDS = ["0", "-1", "99999999999999999999", "1e3", "%00", "%F0%9F%A4%A6", "1%20OR%201=1", "..%2F..",
               "9223372036854775807", "9223372036854775808"]


def api_operations(schema: dict) -> list[dict]:
    """Every operation of an OpenAPI 3 document: ``{"method", "path", "fields", "params"}`` where
    ``fields`` are the JSON request body's property names and ``params`` the query parameters."""
    operations = []
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            fields: set[str] = set()
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                ref = (media.get("schema") or {}).get("$ref", "")
                fields.update(components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
            params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            operations.append({"method": method.upper(), "path": path, "fields": sorted(fields), "params": params})
    return operations


@st.composite
def api_requests(draw, operation: dict, ids: dict[str, list[str]]) -> dict:
    """One hostile request for ``operation``: ``{"path", "query", "body", "content_type", "headers"}``.

    The path's ``{id}`` is one of ``ids[collection]`` (real ids of this and another company) or a hostile
    id; the JSON body maps the operation's fields (and stray keys) to hostile values; query parameters
    likewise; sometimes a raw literal, a non-object body, or an Idempotency-Key.
    """
    path = operation["path"]
    if "{id}" in path:
        collection = path.split("/")[3]
        real = ids.get(collection, [])
        choice = st.one_of(st.sampled_from(real), st.sampled_from(HOSTILE_IDS)) if real else st.sampled_from(HOSTILE_IDS)
        path = path.replace("{id}", draw(choice))
    keys = st.sampled_from(operation["fields"] + ["__proto__", "\ud800", ""]) if operation["fields"] \
        else hostile_strings
    body_value = draw(st.dictionaries(keys, json_values, max_size=5))
    body = json.dumps(body_value).encode()
    shape = draw(st.integers(0, 9))
    if shape == 0:
        body = body[:-1] + (b", " if body_value else b"") + b'"raw": ' + draw(st.sampled_from(RAW_LITERALS)) + b"}"
    elif shape == 1:
        body = draw(st.sampled_from(RAW_LITERALS + [b"", b"{", b"\xff\xfe", b"[1]"]))
    params = st.sampled_from(operation["params"] + ["page", "page_size", "\ud800"]) if operation["params"] \
        else st.sampled_from(["page", "x"])
    query = draw(st.dictionaries(params, hostile_strings, max_size=3))
    headers = {}
    if draw(st.integers(0, 4)) == 0:
        headers["HTTP_IDEMPOTENCY_KEY"] = draw(st.sampled_from(["k1", "k" * 300, "é", " ", "\x7f"]))
    content_type = draw(st.sampled_from(["application/json"] * 4 + ["text/plain", "application/x-www-form-urlencoded"]))
    return {"path": path, "query": query, "body": body, "content_type": content_type, "headers": headers}
