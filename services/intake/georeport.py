"""Open311 GeoReport v2's own formats, as its clients read them: an answer in JSON or in
XML (`.json` or `.xml` at the end of the path), and its list of errors,
`[{"code", "description"}]` or `<errors><error>...`, for every error under /open311/.

Both formats are written from the one body a handler returns (open311.py), so an XML
answer holds exactly what the JSON one does. XML is built with ElementTree, which
escapes what it must; what XML 1.0 cannot carry at all is replaced (see `_xml_text`)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from werkzeug.wrappers import Response

from shared.web import AnswerFormat, json_response

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
XML_MEDIA_TYPE = "text/xml"
# The element of each item of a list, by the list's element (GeoReport v2's own names;
# `attachments` is ours). A list not named here is a mistake, caught by KeyError.
ITEMS = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "attachments": "attachment",
    "endpoints": "endpoint",
    "formats": "format",
    "errors": "error",
}
# XML 1.0 has no way to write these characters, escaped or not (its `Char` production);
# our text fields refuse control characters already, which leaves U+FFFE and U+FFFF.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def error_list(status: int, errors: dict[str, list[str]]) -> list[dict]:
    """Our field errors as GeoReport v2's list: one entry a message, the field named
    first (`service_code: ...`) unless the error is the request's as a whole."""
    return [{"code": status, "description": message if field == "_" else f"{field}: {message}"}
            for field, messages in errors.items() for message in messages]


def _xml_text(value: Any) -> str | None:
    if value is None:
        return None  # an empty element, as GeoReport v2 writes a field without a value
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_XML.sub("\ufffd", str(value))


def element(name: str, value: Any) -> ET.Element:
    """`value` as the element `name`: a dict's keys as child elements, a list's items
    each an element named by ITEMS, anything else as text."""
    node = ET.Element(name)
    if isinstance(value, dict):
        node.extend([element(key, item) for key, item in value.items()])
    elif isinstance(value, list):
        node.extend([element(ITEMS[name], item) for item in value])
    else:
        node.text = _xml_text(value)
    return node


def xml_bytes(root: ET.Element) -> bytes:
    # An XML parser reads a carriage return written as it is as a line feed: written as
    # a character reference, a description's line breaks come back exactly as sent. The
    # tree writes no carriage return of its own, so every one here is from text.
    return ET.tostring(root, encoding="utf-8", xml_declaration=True).replace(b"\r", b"&#13;")


def xml_response(status: int, root: ET.Element, headers: dict | None = None) -> Response:
    return Response(xml_bytes(root), status=status, headers=headers,
                    content_type=f"{XML_MEDIA_TYPE}; charset=utf-8")


ERROR_ITEM = {
    "type": "object",
    "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    "required": ["code", "description"],
}


class GeoReportJson(AnswerFormat):
    """GeoReport v2's JSON: the answer as it is, the errors as its list."""

    name = "json"
    suffix = ".json"
    errors_schema_name = "Open311Errors"
    errors_schema = {"type": "array", "items": ERROR_ITEM}

    def errors(self, status: int, errors: dict[str, list[str]],
               headers: dict | None = None) -> Response:
        return json_response(status, error_list(status, errors), headers)


class GeoReportXml(AnswerFormat):
    """GeoReport v2's XML: the answer as the element `root` (`services`,
    `service_definition`, `service_requests`, `discovery`), the errors as `<errors>`."""

    name = "xml"
    suffix = ".xml"
    media_type = XML_MEDIA_TYPE
    errors_schema_name = "Open311ErrorsXml"
    errors_schema = {"type": "array", "xml": {"name": "errors", "wrapped": True},
                     "items": {**ERROR_ITEM, "xml": {"name": "error"}}}

    def __init__(self, root: str = "errors"):
        self.root = root

    def answer(self, status: int, body: Any, headers: dict | None = None) -> Response:
        return xml_response(status, element(self.root, body), headers)

    def errors(self, status: int, errors: dict[str, list[str]],
               headers: dict | None = None) -> Response:
        return xml_response(status, element("errors", error_list(status, errors)), headers)

    def answer_schema(self, schema: Any) -> dict:
        """The response schema with the XML names of the answer's root and items."""
        many = not isinstance(schema, type) and schema.many
        one = schema if isinstance(schema, type) else type(schema)
        if many:
            return {"type": "array", "xml": {"name": self.root, "wrapped": True},
                    "items": {"allOf": [one], "xml": {"name": ITEMS[self.root]}}}
        return {"allOf": [one], "xml": {"name": self.root}}


JSON = GeoReportJson()
XML = GeoReportXml()


def formats(root: str) -> tuple[AnswerFormat, AnswerFormat]:
    """The two formats of a GeoReport endpoint whose XML answer is the element `root`."""
    return JSON, GeoReportXml(root)
