"""A JSON parser that refuses oversize bodies before reading them and names JSON syntax errors."""
from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        from designer.api.errors import RequestTooLarge, too_large_message   # errors imports DRF's views

        request = parser_context["request"]
        limit = settings.MAX_DEFINITION_BYTES + 65536
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > limit:
            raise RequestTooLarge(too_large_message(length, limit))
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(too_large_message(None, limit))
        try:
            return json.loads(raw.decode(parser_context.get("encoding") or "utf-8"))
        except UnicodeDecodeError as exc:
            raise ParseError(f"request body is not UTF-8: {exc}") from None
        except ValueError as exc:
            raise ParseError(f"malformed JSON: {exc}") from None
