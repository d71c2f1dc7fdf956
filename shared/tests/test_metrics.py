"""What the services count for their operators: labels from small fixed sets (route
templates, never a path with someone's tracking code in it), gauges read when scraped."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.web import HttpEntrypoint, route_template


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_route_is_named_by_its_template_not_by_the_path_asked_for():
    assert route_template("/v1/cases/<string:tracking_code>") == "/v1/cases/{tracking_code}"
    assert route_template("/v1/offices/<office_id>/queue") == "/v1/offices/{office_id}/queue"
    assert route_template("/<path:unknown>") == "/{unknown}"
    assert route_template("/health") == "/health"
    assert HttpEntrypoint("GET", "/v1/cases/<string:tracking_code>").template == \
        "/v1/cases/{tracking_code}"


def test_an_answered_request_is_counted_by_template_method_and_status():
    labels = {"endpoint": "/v1/cases/{tracking_code}", "method": "GET"}
    before = sample("ourvoice_http_requests_total", **labels, status="404")
    seen = sample("ourvoice_http_request_seconds_count", **labels)
    metrics.request_answered("/v1/cases/{tracking_code}", "GET", 404, 0.012)
    assert sample("ourvoice_http_requests_total", **labels, status="404") == before + 1
    assert sample("ourvoice_http_request_seconds_count", **labels) == seen + 1
    assert sample("ourvoice_http_request_seconds_bucket", **labels, le="0.025") >= 1


def test_an_event_is_counted_by_type_and_outcome_and_timed_when_it_was_handled():
    before = sample("ourvoice_events_consumed_total", event_type="CaseSubmitted",
                    outcome="handled")
    timed = sample("ourvoice_event_processing_seconds_count", event_type="CaseSubmitted")
    metrics.event_settled("CaseSubmitted", "handled", 0.003)
    metrics.event_settled("CaseSubmitted", "requeued")
    assert sample("ourvoice_events_consumed_total", event_type="CaseSubmitted",
                  outcome="handled") == before + 1
    assert sample("ourvoice_event_processing_seconds_count",
                  event_type="CaseSubmitted") == timed + 1


def test_deliveries_are_counted_by_outcome_and_the_dead_as_dead_letters():
    before = {outcome: sample("ourvoice_deliveries_total", channel="sms", outcome=outcome)
              for outcome in ("sent", "failed", "dead", "skipped")}
    dead = sample("ourvoice_dead_letters_total", channel="sms")
    metrics.deliveries_recorded([("sms", "sent"), ("sms", "retrying"), ("sms", "dead"),
                                 ("sms", "due"), ("sms", "sending"), ("sms", "skipped")])
    for outcome in before:
        assert sample("ourvoice_deliveries_total", channel="sms",
                      outcome=outcome) == before[outcome] + 1
    assert sample("ourvoice_dead_letters_total", channel="sms") == dead + 1


def test_deadlines_are_counted_once_recorded_and_not_when_recording_failed():
    class SlaWarning(SimpleNamespace):
        pass

    class SlaBreached(SimpleNamespace):
        pass

    class CaseRouted(SimpleNamespace):
        pass

    case = SimpleNamespace(pending_events=[SlaWarning(deadline="acknowledge"),
                                           SlaBreached(deadline="resolve"),
                                           CaseRouted(at=datetime.now(UTC))])
    warned = sample("ourvoice_deadlines_total", deadline="acknowledge", outcome="warned")
    breached = sample("ourvoice_deadlines_total", deadline="resolve", outcome="breached")
    with pytest.raises(RuntimeError), metrics.deadlines_recorded(case):
        raise RuntimeError("another instance recorded it first")
    assert sample("ourvoice_deadlines_total", deadline="acknowledge",
                  outcome="warned") == warned
    with metrics.deadlines_recorded(case):
        pass
    assert sample("ourvoice_deadlines_total", deadline="acknowledge",
                  outcome="warned") == warned + 1
    assert sample("ourvoice_deadlines_total", deadline="resolve",
                  outcome="breached") == breached + 1



@pytest.fixture
def metrics_off():
    metrics.switch(False)
    try:
        yield
    finally:
        metrics.switch(True)


def every_kind_of_count(case) -> None:
    metrics.request_answered("/v1/cases", "POST", 201, 0.01)
    metrics.event_settled("CaseRouted", "handled", 0.002)
    metrics.unsettled_changed("ourvoice.test", +1)
    metrics.batch_taken("ourvoice.test", 3)
    metrics.waiting_in_queue("ourvoice.test", 7)
    metrics.published("test-store", ["CaseRouted"])
    metrics.deliveries_recorded([("email", "sent")])
    with metrics.deadlines_recorded(case):
        pass


COUNTS = [("ourvoice_http_requests_total", {"endpoint": "/v1/cases", "method": "POST",
                                            "status": "201"}),
          ("ourvoice_http_request_seconds_count", {"endpoint": "/v1/cases", "method": "POST"}),
          ("ourvoice_events_consumed_total", {"event_type": "CaseRouted", "outcome": "handled"}),
          ("ourvoice_event_processing_seconds_count", {"event_type": "CaseRouted"}),
          ("ourvoice_consumer_unsettled_messages", {"queue": "ourvoice.test"}),
          ("ourvoice_consumer_batch_messages_count", {"queue": "ourvoice.test"}),
          ("ourvoice_consumer_queue_ready_messages", {"queue": "ourvoice.test"}),
          ("ourvoice_events_published_total", {"store": "test-store", "event_type": "CaseRouted"}),
          ("ourvoice_deliveries_total", {"channel": "email", "outcome": "sent"}),
          ("ourvoice_deadlines_total", {"deadline": "resolve", "outcome": "breached"})]


def test_with_metrics_off_nothing_is_counted_and_with_them_on_everything_is(metrics_off):
    class SlaBreached(SimpleNamespace):
        pass

    case = SimpleNamespace(pending_events=[SlaBreached(deadline="resolve")])
    before = {name: sample(name, **labels) for name, labels in COUNTS}
    every_kind_of_count(case)
    assert {name: sample(name, **labels) for name, labels in COUNTS} == before

    metrics.switch(True)
    every_kind_of_count(case)
    after = {name: sample(name, **labels) for name, labels in COUNTS}
    assert after["ourvoice_consumer_queue_ready_messages"] == 7
    assert {name: after[name] - before[name] for name in before
            if name != "ourvoice_consumer_queue_ready_messages"} == {
        name: 1 for name, _ in COUNTS if name != "ourvoice_consumer_queue_ready_messages"}
    metrics.unsettled_changed("ourvoice.test", -1)


def test_the_setting_reads_on_and_off(monkeypatch):
    from shared.settings import SettingsError, reload

    try:
        for value, counting in (("off", False), ("on", True), ("no", False), ("yes", True)):
            monkeypatch.setenv("OURVOICE_METRICS", value)
            assert reload().metrics is counting, value
        monkeypatch.setenv("OURVOICE_METRICS", "sometimes")
        with pytest.raises(SettingsError, match="OURVOICE_METRICS"):
            reload()
    finally:
        monkeypatch.delenv("OURVOICE_METRICS")
        reload()


class Follower:
    def __init__(self, name: str, position: int, lag: int):
        self.name, self._position, self._lag = name, position, lag

    def position(self) -> int:
        return self._position

    def lag(self) -> int:
        return self._lag


def test_followers_positions_and_relay_lags_are_read_when_scraped():
    relay, projection = Follower("relay:test-store", 40, 3), Follower("test.view", 12, 0)
    metrics.follow(relay)
    metrics.follow(projection)
    try:
        assert sample("ourvoice_follower_position", follower="relay:test-store") == 40
        assert sample("ourvoice_follower_lag_events", follower="test.view") == 0
        assert sample("ourvoice_relay_lag_events", store="test-store") == 3
        relay._lag = 5  # read again at each scrape, not remembered
        assert sample("ourvoice_relay_lag_events", store="test-store") == 5
        assert metrics.relay_lags()["test-store"] == 5
        assert "test.view" not in metrics.relay_lags()
    finally:
        metrics.unfollow(relay)
        metrics.unfollow(projection)
    assert REGISTRY.get_sample_value("ourvoice_relay_lag_events", {"store": "test-store"}) is None


def test_a_reading_that_fails_leaves_its_gauge_out_of_the_scrape_and_is_counted():
    def away():
        raise ConnectionError("the database did not answer")

    failures = sample("ourvoice_scrape_failures_total", gauge="ourvoice_open_cases")
    metrics.read_when_scraped("ourvoice_open_cases", "test", away)
    try:
        body, content_type = metrics.exposition()
        assert content_type.startswith("text/plain")
        assert b"# TYPE ourvoice_open_cases gauge" in body
        assert sample("ourvoice_scrape_failures_total",
                      gauge="ourvoice_open_cases") >= failures + 1
    finally:
        metrics.scraped.forget("ourvoice_open_cases", "test")


def test_a_reading_given_again_under_its_key_replaces_the_first():
    metrics.read_when_scraped("ourvoice_open_cases", "test", lambda: [(("commune", "commune"), 1)])
    metrics.read_when_scraped("ourvoice_open_cases", "test", lambda: [(("commune", "commune"), 2)])
    try:
        assert sample("ourvoice_open_cases", office_kind="commune", level="commune") == 2
    finally:
        metrics.scraped.forget("ourvoice_open_cases", "test")


# -- the Grafana dashboard in deploy/ ----------------------------------------------------
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ourvoice.json"
# What Prometheus calls the series of each kind of metric.
SERIES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
          "gauge": ("",)}


def exposed_series() -> set[str]:
    """Every series name shared/metrics.py gives Prometheus."""
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            kind, base = metric._type, metric._name
            names |= {base.removesuffix("_total") + suffix for suffix in SERIES[kind]}
    names |= set(metrics.scraped.readers)  # the gauges read when scraped
    return names


def queries(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        if isinstance(node.get("definition"), str):
            found.append(node["definition"])
        return found + [q for value in node.values() for q in queries(value)]
    if isinstance(node, list):
        return [q for value in node for q in queries(value)]
    return []


def test_the_dashboard_is_json_and_each_metric_it_asks_for_is_one_the_services_expose():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    asked = {name for query in queries(dashboard) for name in re.findall(r"\bourvoice_\w+", query)}
    assert asked and asked <= exposed_series(), sorted(asked - exposed_series())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_dashboard_shows_every_figure_the_operators_were_promised():
    asked = " ".join(queries(json.loads(DASHBOARD.read_text(encoding="utf-8"))))
    for series in ("ourvoice_http_requests_total", "ourvoice_http_request_seconds_bucket",
                   "ourvoice_events_consumed_total", "ourvoice_consumer_queue_ready_messages",
                   "ourvoice_relay_lag_events", "ourvoice_follower_position",
                   "ourvoice_deliveries_total", "ourvoice_dead_letters_total",
                   "ourvoice_deadlines_total", "ourvoice_open_cases"):
        assert series in asked
    assert "histogram_quantile(0.5," in asked and "histogram_quantile(0.99," in asked
