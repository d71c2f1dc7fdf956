"""GeoReport v2's formats: the XML written from the same body as the JSON, and the list
of errors, read back with a standard parser."""

import json
import xml.etree.ElementTree as ET

import pytest

from services.intake import georeport, open311
from shared.settings import reload

REQUEST = {"service_request_id": "12345-67890", "status": "open", "description": None,
           "attachments": [{"attachment_id": "a1", "kind": "photo", "size": 1024}]}


def test_field_errors_become_the_list_of_errors_with_the_field_named():
    errors = {"service_code": ["unknown service"], "_": ["the form is too large"],
              "api_key": ["missing", "too short"]}
    assert georeport.error_list(400, errors) == [
        {"code": 400, "description": "service_code: unknown service"},
        {"code": 400, "description": "the form is too large"},
        {"code": 400, "description": "api_key: missing"},
        {"code": 400, "description": "api_key: too short"}]


def test_a_list_of_requests_is_written_with_georeport_element_names():
    root = ET.fromstring(georeport.xml_bytes(georeport.element("service_requests", [REQUEST])))
    assert root.tag == "service_requests"
    (request,) = root
    assert request.tag == "request"
    assert [child.tag for child in request] == list(REQUEST)
    assert request.findtext("service_request_id") == "12345-67890"
    assert request.find("description").text is None  # null: an empty element
    (attachment,) = request.find("attachments")
    assert attachment.tag == "attachment" and attachment.findtext("size") == "1024"


def test_booleans_and_numbers_are_written_as_xml_schema_writes_them():
    root = georeport.element("service", {"metadata": True, "variable": False, "order": 2})
    assert [c.text for c in root] == ["true", "false", "2"]


def test_a_list_without_a_known_item_name_is_refused():
    with pytest.raises(KeyError):
        georeport.element("things", [1, 2])


@pytest.mark.parametrize("text", [
    "<b>Tap & pipe</b> are \"broken\" ]]> 'now'",
    "ទឹកមិនហូរ ៣ ថ្ងៃហើយ & <គ្មាន> ចម្លើយ",
    "line one\r\nline two\rthree\n\tindented",
])
def test_text_comes_back_exactly_as_it_went_in(text):
    written = georeport.xml_bytes(georeport.element("request", {"description": text}))
    assert ET.fromstring(written).findtext("description") == text


def test_what_xml_cannot_carry_is_replaced_not_left_to_break_the_document():
    written = georeport.xml_bytes(georeport.element("request", {"description": "a\uffffb\ufffe"}))
    assert ET.fromstring(written).findtext("description") == "a\ufffdb\ufffd"


def test_both_formats_write_errors_as_georeport_lists_keeping_the_status():
    errors = {"api_key": ["not a key this service knows"]}
    as_json = georeport.JSON.errors(403, errors, headers={"X-Why": "test"})
    assert as_json.status_code == 403 and as_json.mimetype == "application/json"
    assert json.loads(as_json.get_data()) == [
        {"code": 403, "description": "api_key: not a key this service knows"}]
    as_xml = georeport.XML.errors(403, errors)
    assert as_xml.status_code == 403
    assert as_xml.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(as_xml.get_data())
    assert root.tag == "errors"
    assert [(e.tag, e.findtext("code"), e.findtext("description")) for e in root] == [
        ("error", "403", "api_key: not a key this service knows")]


def test_an_answer_in_xml_is_its_root_element_around_the_body():
    answer = georeport.GeoReportXml("services").answer(200, [{"service_code": "land"}])
    assert answer.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert answer.get_data().startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(answer.get_data())
    assert [(root.tag, s.tag, s.findtext("service_code")) for s in root] == [
        ("services", "service", "land")]


def test_discovery_says_production_only_in_production():
    test = open311.discovery("http://127.0.0.1:8001/open311/v2", False, "Ask us")
    production = open311.discovery("https://ourvoice.example.org/open311/v2", True, "Ask us")
    assert [d["endpoints"][0]["type"] for d in (test, production)] == ["test", "production"]
    (endpoint,) = production["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert production["contact"] == production["key_service"] == "Ask us"


def test_discovery_gives_the_operators_address_else_the_one_the_client_asked(monkeypatch):
    monkeypatch.delenv("OURVOICE_OPEN311_URL", raising=False)
    reload()
    assert open311.public_url("http://10.0.0.5:8001/") == "http://10.0.0.5:8001/open311/v2"
    monkeypatch.setenv("OURVOICE_OPEN311_URL", "https://ourvoice.example.org/open311/v2/")
    reload()
    try:
        assert open311.public_url("http://10.0.0.5:8001/") == \
            "https://ourvoice.example.org/open311/v2"
    finally:
        monkeypatch.delenv("OURVOICE_OPEN311_URL")
        reload()
