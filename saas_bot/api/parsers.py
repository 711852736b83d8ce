"""Request parsers of the API."""
from __future__ import annotations

import re

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_path(data) -> str | None:
    """Where in parsed JSON ``data`` a string (value or key) holds a lone UTF-16 surrogate, as a JSON-pointer-like
    path ("/language", "/items/2"); None when there is none.

    ``json.loads`` turns an escaped pair ("\\ud83d\\ude00") into its character, so what is left is a half of
    one: not text (UTF-8 cannot encode it, PostgreSQL refuses it). The first in document order is reported.
    Iterative, so any depth the JSON decoder accepted is walked.
    """
    stack = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                return path or "/"
        elif isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and _LONE_SURROGATE.search(key):
                    return path + "/" + key.encode("ascii", "backslashreplace").decode("ascii")
            stack.extend((f"{path}/{key}", item) for key, item in reversed(value.items()))  # first key first
        elif isinstance(value, list):
            stack.extend((f"{path}/{index}", item) for index, item in reversed(list(enumerate(value))))
    return None


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, plus two 400s instead of 500s:

    - a body nested too deeply for Python's decoder (RecursionError, around 1,000 levels);
    - a string with a lone UTF-16 surrogate (``"\\udc00"``) anywhere in the body: it is not text, and a
      field's error message that echoed it could not be encoded (found by ``bench/hostile_probe.py``:
      ``POST /bots`` with such a ``language`` answered 500). DRF's text fields already refuse it; this
      refuses it for every field, choices and keys included, before any view sees it.

    Raises:
        ParseError: 400 ``parse_error`` (too deep).
        ValidationError: 400 ``validation_failed`` naming the top-level field whose value holds the surrogate
            (``non_field_errors`` when the body itself or a top-level key does).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        where = lone_surrogate_path(data)
        if where is not None:
            top = where.split("/")[1] if where != "/" else ""
            field = top if isinstance(data, dict) and top in data else "non_field_errors"
            raise ValidationError({field: [f"The string at {where} holds a lone UTF-16 surrogate (half of an "
                                           "escaped pair such as \\ud83d), which is not text."]})
        return data
