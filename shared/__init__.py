"""Code common to the four Our Voice services: configuration, public event schemas,
the event store, the relay, the idempotent consumer, read models and the HTTP edge."""

import warnings

# nameko depends on eventlet, which announces its own deprecation on import; the
# services' logs should carry their own news, not that.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
