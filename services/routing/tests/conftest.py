import pytest
import yaml

from services.routing.deadlines import policies_from


@pytest.fixture
def policies():
    """Round-the-clock policies with round numbers, so expectations are easy to read."""
    return policies_from(yaml.safe_load("""
default: {acknowledge: PT2H, resolve: P10D, warn_at: 0.5, calendar: 24x7}
ombudsman: {acknowledge: PT1H, resolve: P5D}
"""))
