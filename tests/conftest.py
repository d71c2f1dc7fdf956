import pytest

from tests.system import System


@pytest.fixture(scope="module")
def system(request):
    """All four services, running as processes against a fresh database and vhost."""
    system = System(request.module.__name__.rsplit(".", 1)[-1])
    system.create()
    try:
        system.start_all()
        yield system
    finally:
        system.destroy()
