import pytest

from tests.system import System


@pytest.fixture(scope="module")
def system(request):
    """All four services, running as processes against a fresh database and vhost; a test
    module may set SYSTEM_ENV for settings of its own (short deadlines, say)."""
    system = System(request.module.__name__.rsplit(".", 1)[-1],
                    getattr(request.module, "SYSTEM_ENV", None))
    system.create()
    try:
        system.start_all()
        yield system
    finally:
        system.destroy()
