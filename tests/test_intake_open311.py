"""Open311 GeoReport v2 on the same cases, through the real services, read as an Open311
client reads them: JSON, and XML parsed with the standard library's parser, compared
field for field."""

import xml.etree.ElementTree as ET

import pytest
import requests
from requests.adapters import HTTPAdapter

from shared.tracking import case_id_for
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

KEY = "open311-live-key"
# The first may also read descriptions; the second only submits.
SYSTEM_ENV = {"OURVOICE_OPEN311_KEYS": f"{KEY}:read-descriptions, another-client-key"}
FORMATS = ("json", "xml")
MEDIA_TYPES = {"json": "application/json", "xml": "text/xml; charset=utf-8"}
# GeoReport v2's XML: the element of each item of a list (`attachments` is ours).
ITEM_OF = {"services": "service", "attributes": "attribute", "values": "value",
           "service_requests": "request", "attachments": "attachment",
           "endpoints": "endpoint", "formats": "format", "errors": "error"}


def get(system, path, **params):
    response = requests.get(system.url("intake", f"/open311/v2/{path}"), params=params,
                            timeout=10)
    return response


def post(system, fmt="json", **form):
    return requests.post(system.url("intake", f"/open311/v2/requests.{fmt}"), data=form,
                         timeout=10)


def from_xml(element: ET.Element):
    """An XML answer as the JSON it should equal once written as text: lists by their
    GeoReport element names, objects by their children, an empty element as null."""
    if element.tag in ITEM_OF:
        assert all(child.tag == ITEM_OF[element.tag] for child in element), element.tag
        return [from_xml(child) for child in element]
    if len(element):
        tags = [child.tag for child in element]
        assert len(tags) == len(set(tags)), f"{element.tag} repeats a field: {tags}"
        return {child.tag: from_xml(child) for child in element}
    return element.text


def as_text(value):
    """A JSON answer with every value as XML writes it: text, true or false, null."""
    if isinstance(value, dict):
        return {key: as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_text(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None or value == "" else str(value)


def parsed(response: requests.Response, root: str):
    """An XML answer, checked to be one, parsed as its root element `root`."""
    assert response.headers["Content-Type"] == MEDIA_TYPES["xml"], response.headers
    element = ET.fromstring(response.content)
    assert element.tag == root, response.text[:200]
    return from_xml(element)


def both(system, path: str, root: str, **params):
    """The answer at `path` in JSON and in XML: (JSON as text, XML read back)."""
    as_json = get(system, f"{path}.json", **params)
    as_xml = get(system, f"{path}.xml", **params)
    assert as_json.status_code == as_xml.status_code == 200, (as_json.text, as_xml.text)
    assert as_json.headers["Content-Type"] == MEDIA_TYPES["json"]
    return as_text(as_json.json()), parsed(as_xml, root)


def same_in_both(system, path: str, root: str, **params):
    """Wait for the JSON and XML answers to agree (a case may move on between two
    reads), then return them; they must agree within the wait."""
    answers = wait_until(lambda: (pair := both(system, path, root, **params))[0] == pair[1]
                         and pair, interval=0.25, what=f"{path} the same in JSON and XML")
    return answers[0]


def errors_of(response: requests.Response, fmt: str) -> list[dict]:
    """Open311's list of errors, in the format of the path, each with the HTTP status."""
    assert response.headers["Content-Type"] == MEDIA_TYPES[fmt], response.headers
    if fmt == "json":
        found = as_text(response.json())
    else:
        found = parsed(response, "errors")
    assert found and all(set(e) == {"code", "description"} for e in found), found
    assert {e["code"] for e in found} == {str(response.status_code)}, found
    return found


def described(response: requests.Response, fmt: str = "json") -> list[str]:
    return [e["description"] for e in errors_of(response, fmt)]


def names(response: requests.Response, field: str, fmt: str = "json") -> bool:
    """Whether an error names the field, as Open311's descriptions do (`field: ...`)."""
    return any(d.startswith(f"{field}: ") for d in described(response, fmt))


class FromAddress(HTTPAdapter):
    """Requests sent from another loopback address: a client of its own for the limits
    that count per client address (every address of 127.0.0.0/8 is this machine)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def new_request(**overrides) -> dict:
    return {"api_key": KEY, "service_code": "water-supply", "address_id": "120101",
            "description": "The tap on street 310 has been dry since Friday.",
            "lat": "11.55", "long": "104.92", **overrides}


def test_services_are_the_categories(system):
    services = get(system, "services.json")
    assert services.status_code == 200
    codes = {s["service_code"]: s for s in services.json()}
    assert codes["water-supply"]["service_name"] == "Clean water supply"
    assert codes["water-supply"]["metadata"] is True and codes["water-supply"]["type"] == "realtime"
    definition = get(system, "services/gender-based-violence.json").json()
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert [v["key"] for v in attributes["case_type"]["values"]] == [
        "complaint", "support", "information"]
    assert get(system, "services/no-such-service.json").status_code == 404


def test_posting_a_request_needs_a_known_api_key_and_a_valid_form(system):
    assert post(system, **{**new_request(), "api_key": "guessed"}).status_code == 403
    assert post(system, **new_request(api_key="open311-development-key")).status_code == 403
    missing = post(system, service_code="water-supply", address_id="120101")
    assert missing.status_code == 400 and names(missing, "api_key")
    as_json = requests.post(system.url("intake", "/open311/v2/requests.json"),
                            json=new_request(), timeout=10)
    assert as_json.status_code == 400
    for form, field in [
        (new_request(address_id="999999"), "address_id"),
        (new_request(address_id="Phnom Penh"), "address_id"),
        (new_request(service_code="potholes"), "service_code"),
        (new_request(phone="555-0100"), "phone"),
        (new_request(**{"attribute[case_type]": "evaluation"}), "attribute[rating]"),
        (new_request(**{"attribute[rating]": "4"}), "attribute[rating]"),
        (new_request(lat="north"), "lat"),
        (new_request(colour="red"), "colour"),
    ]:
        response = post(system, **form)
        assert response.status_code == 400, (form, response.text)
        assert names(response, field), (form, response.json())


def test_a_request_posted_form_encoded_is_a_case_followed_like_any_other(system):
    posted = post(system, **new_request(first_name="Dara", phone="012 555 666",
                                        **{"attribute[gender]": "male",
                                           "attribute[language]": "en"}))
    assert posted.status_code == 201, posted.text
    (receipt,) = posted.json()
    code = receipt["service_request_id"]
    assert receipt["service_notice"] and receipt["account_id"] is None
    mine = requests.get(system.url("intake", f"/v1/cases/{code}"), timeout=10,
                        headers={"Authorization": f"Bearer {receipt['citizen_token']}"})
    assert mine.status_code == 200 and mine.json()["language"] == "en"

    def routed():
        (one,) = get(system, f"requests/{code}.json").json()
        return one if one["agency_responsible"] else None

    request = wait_until(routed, what="the request shows its office")
    assert request["status"] == "open"
    assert request["agency_responsible"] == "Tonle Basak Commune Office"
    assert request["expected_datetime"] and request["requested_datetime"]
    assert request["address_id"] == "120101"
    assert request["address"] == "Tonle Basak, Chamkar Mon, Phnom Penh"
    assert request["description"] is None, "descriptions only for a key granted them"
    (granted,) = get(system, f"requests/{code}.json", api_key=KEY).json()
    assert granted["description"] == "The tap on street 310 has been dry since Friday."
    assert "Dara" not in str(request) and "555" not in str(request) and "male" not in str(request)
    assert get(system, "requests/22222-22222.json").status_code == 404

    # Resolved is closed for Open311, with the reason in status_notes.
    case_id = case_id_for(code)
    staff = system.principal("staff", "commune-120101")
    for action, body in (("acknowledge", {}), ("resolve", {"resolution": "Tap repaired"})):
        done = system.call("POST", "routing", f"/v1/cases/{case_id}/{action}", staff, json=body)
        assert done.status_code == 200, done.text
    closed = wait_until(lambda: (r := get(system, f"requests/{code}.json").json()[0])
                        ["status"] == "closed" and r, what="request closed")
    assert "resolved" in closed["status_notes"].lower()


def test_listing_requests_filters_and_never_leaks(system):
    land = submit(system, complaint(category="land", description="Land title delayed",
                                    complainant={"anonymous": False, "phone": "012 444 555",
                                                 "gender": "female"}))
    secret = submit(system, complaint(category="gender-based-violence",
                                      description="ការបៀតបៀនផ្លូវភេទ"))
    withdrawn = submit(system, complaint(category="schools", description="No teacher"))
    assert system.call("POST", "intake", f"/v1/cases/{withdrawn['tracking_code']}/withdraw",
                       withdrawn["citizen_token"], json={}).status_code == 200

    def listed(**params):
        response = get(system, "requests.json", api_key=KEY, **params)
        assert response.status_code == 200, response.text
        return {r["service_request_id"]: r for r in response.json()}

    # Listed once the case list has taken the submissions, with the description once
    # the case view has (the two are kept from the events each in its own time).
    everything = wait_until(lambda: (found := listed()) and {
        land["tracking_code"], withdrawn["tracking_code"]} <= set(found)
        and found[land["tracking_code"]]["description"] and found, what="listed")
    assert secret["tracking_code"] not in everything, "a sensitive case is never listed"
    text = str(everything)
    assert "ការបៀតបៀន" not in text and "444" not in text and "female" not in text
    assert everything[land["tracking_code"]]["description"] == "Land title delayed"

    assert set(listed(service_code="land")) == {land["tracking_code"]}
    closed = wait_until(lambda: (found := listed(status="closed"))
                        and withdrawn["tracking_code"] in found and found, what="withdrawal")
    assert land["tracking_code"] not in closed
    assert "Withdrawn" in closed[withdrawn["tracking_code"]]["status_notes"]
    assert land["tracking_code"] in listed(status="open")
    both = f"{land['tracking_code']},{secret['tracking_code'].lower()}"
    assert set(listed(service_request_id=both)) == {land["tracking_code"]}
    assert listed(start_date="2999-01-01T00:00:00Z") == {}
    assert listed(end_date="2000-01-01T00:00:00+07:00") == {}
    for params, field in [({"status": "pending"}, "status"), ({"start_date": "yesterday"},
                          "start_date"), ({"sort": "newest"}, "sort")]:
        refused = get(system, "requests.json", **params)
        assert refused.status_code == 400 and names(refused, field), refused.text


# -- the XML format and discovery --------------------------------------------------------
def test_discovery_names_this_endpoint_and_its_urls_answer_in_both_formats(system):
    document = same_in_both(system, "discovery", "discovery")
    assert document["contact"] and document["key_service"] and document["changeset"]
    (endpoint,) = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["type"] == "test"  # not OURVOICE_ENV=production
    assert endpoint["formats"] == ["text/xml", "application/json"]
    assert endpoint["url"] == system.url("intake", "/open311/v2")
    for fmt, media_type in (("json", "application/json"), ("xml", "text/xml")):
        answer = requests.get(f"{endpoint['url']}/services.{fmt}", timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(media_type)


def test_services_and_their_definitions_in_xml_are_the_json_answers(system):
    services = same_in_both(system, "services", "services")
    assert "water-supply" in {s["service_code"] for s in services}
    for code in [s["service_code"] for s in services]:
        definition = same_in_both(system, f"services/{code}", "service_definition")
        assert definition["service_code"] == code
        assert {a["code"] for a in definition["attributes"]} >= {"case_type", "language"}


def test_requests_in_xml_are_the_json_answers_and_never_show_a_sensitive_case(system):
    land = submit(system, complaint(category="land", description="Title <deed> & fee"))
    secret = submit(system, complaint(category="gender-based-violence",
                                      description="ការបៀតបៀនផ្លូវភេទ"))
    code = land["tracking_code"]

    def routed():
        (one,) = get(system, f"requests/{code}.json").json()
        return one["agency_responsible"]

    wait_until(routed, what="the land case routed", interval=0.25)
    (one,) = same_in_both(system, f"requests/{code}", "service_requests", api_key=KEY)
    assert one["description"] == "Title <deed> & fee" and one["attachments"] == []
    (hidden,) = same_in_both(system, f"requests/{code}", "service_requests")
    assert hidden["description"] is None

    everything = same_in_both(system, "requests", "service_requests", api_key=KEY)
    assert code in {r["service_request_id"] for r in everything}
    assert secret["tracking_code"] not in {r["service_request_id"] for r in everything}
    listed_xml = get(system, "requests.xml", api_key=KEY).text
    assert secret["tracking_code"] not in listed_xml and "ការបៀតបៀន" not in listed_xml
    assert same_in_both(system, "requests", "service_requests", api_key=KEY,
                        service_request_id=f"{code},{secret['tracking_code']}") == [one]
    for fmt in FORMATS:
        unknown = get(system, f"requests/{secret['tracking_code']}.{fmt}", api_key=KEY)
        assert unknown.status_code == 404 and "ការបៀតបៀន" not in unknown.text
        assert described(unknown, fmt) == ["case not found"]


def test_a_request_posted_to_requests_xml_is_answered_in_xml_and_reads_back_exactly(system):
    words = 'The pipe <b>"broken"</b> & leaking ]]> since ថ្ងៃសុក្រ\r\nទឹកមិនហូរ ៣ ថ្ងៃ'
    posted = post(system, "xml", **new_request(description=words))
    assert posted.status_code == 201, posted.text
    (receipt,) = parsed(posted, "service_requests")
    assert list(receipt) == ["service_request_id", "service_notice", "account_id",
                             "citizen_token"]
    assert receipt["service_notice"] and receipt["account_id"] is None
    code = receipt["service_request_id"]
    (read,) = same_in_both(system, f"requests/{code}", "service_requests", api_key=KEY)
    assert read["description"] == words
    mine = requests.get(system.url("intake", f"/v1/cases/{code}"), timeout=10,
                        headers={"Authorization": f"Bearer {receipt['citizen_token']}"})
    assert mine.status_code == 200 and mine.json()["tracking_code"] == code


def test_every_error_under_open311_is_its_list_in_the_format_of_the_path(system):
    for fmt in FORMATS:
        unknown_service = post(system, fmt, **new_request(service_code="potholes"))
        assert unknown_service.status_code == 400 and names(unknown_service, "service_code", fmt)
        missing_key = post(system, fmt, service_code="water-supply", address_id="120101")
        assert missing_key.status_code == 400 and names(missing_key, "api_key", fmt)
        bad_query = get(system, f"requests.{fmt}", status="pending")
        assert bad_query.status_code == 400 and names(bad_query, "status", fmt)
        for path in ("services/no-such-service", "requests/22222-22222", "no-such-thing"):
            missing = get(system, f"{path}.{fmt}")
            assert missing.status_code == 404 and errors_of(missing, fmt), (path, missing.text)
        wrong_method = requests.delete(system.url("intake", f"/open311/v2/services.{fmt}"),
                                       timeout=10)
        assert wrong_method.status_code == 404 and errors_of(wrong_method, fmt)
        too_large = post(system, fmt, **new_request(description="x" * (1 << 20)))
        assert too_large.status_code == 413, too_large.text
        assert "the body is larger than" in described(too_large, fmt)[0]
    # Any other suffix is no GeoReport format: the JSON list.
    assert errors_of(get(system, "services.csv"), "json")
    # The rest of the API keeps its own format.
    elsewhere = requests.get(system.url("intake", "/v1/no-such-thing"), timeout=10)
    assert elsewhere.status_code == 404 and "errors" in elsewhere.json()


@pytest.mark.parametrize("fmt,address", [("json", "127.0.0.2"), ("xml", "127.0.0.3")])
def test_wrong_api_keys_are_403s_then_429s_in_the_format_of_the_path(system, fmt, address):
    client = client_at(address)
    url = system.url("intake", f"/open311/v2/requests.{fmt}")
    answers = [client.get(url, params={"api_key": f"guess-{n}"}, timeout=10) for n in range(5)]
    answers += [client.post(url, data=new_request(api_key=f"guess-{n}"), timeout=10)
                for n in range(5, 11)]
    assert [a.status_code for a in answers] == [403] * 10 + [429], [a.text for a in answers]
    assert all(names(a, "api_key", fmt) for a in answers)
    assert described(answers[-1], fmt)[0].startswith("api_key: too many wrong keys")
    assert int(answers[-1].headers["Retry-After"]) >= 1


def test_too_many_reads_are_refused_in_the_format_of_the_path(system):
    client = client_at("127.0.0.4")
    url = system.url("intake", "/open311/v2/services.xml")
    for _ in range(700):  # 600 a minute by default, in a burst of as many
        answer = client.get(url, timeout=10)
        if answer.status_code != 200:
            break
    assert answer.status_code == 429, answer.text
    assert described(answer, "xml")[0].startswith("too many requests from this address")
    assert int(answer.headers["Retry-After"]) >= 1


def test_an_open311_client_library_reads_our_endpoints_in_both_formats(system):
    from georeport import GeoReport  # a client made for cities' Open311 endpoints

    (endpoint,) = get(system, "discovery.json").json()["endpoints"]
    posted = post(system, **new_request(description="Read by a client library"))
    assert posted.status_code == 201, posted.text
    code = posted.json()[0]["service_request_id"]
    json_client = GeoReport(endpoint["url"], output_format="json")
    xml_client = GeoReport(endpoint["url"], output_format="xml")

    services = json_client.get_service_list()
    assert [s["service_code"] for s in xml_client.get_service_list()] == [
        s["service_code"] for s in services]
    definition = xml_client.get_service_definition("water-supply")
    assert [a["code"] for a in definition["attributes"]["attribute"]] == [
        a["code"] for a in json_client.get_service_definition("water-supply")["attributes"]]

    as_json = json_client.get_service_request(code)
    as_xml = xml_client.get_service_request(code)
    assert as_xml["service_request_id"] == as_json["service_request_id"] == code
    for field in ("status", "service_code", "address_id", "address", "requested_datetime"):
        assert as_xml[field] == as_json[field], field
    assert as_xml["description"] is None and as_json["description"] is None  # no api_key
    assert code in {r["service_request_id"] for r in xml_client.get_service_requests()}
