"""Settings are read once per process (shared/settings.py). A test that changes the
environment in this process reads them again itself (`shared.settings.reload()`); after
each test they are read again from the environment as it is put back, so no test sees
another's."""

import pytest

from shared import settings


@pytest.fixture(autouse=True)
def settings_of_this_process():
    yield
    settings.reload()
