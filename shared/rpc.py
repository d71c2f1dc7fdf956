"""nameko's RPC between services (an office's contact for notifications, a case file for
an authorised viewer), on queue consumers that survive a broker restart: see
`SettlingQueueConsumer`. Services use `rpc` and `RpcProxy` from here. A call carries
the caller's context, the request id among it (see logcontext.py), so the answering
service's line names the request that caused it.

Requests and replies carry the broker user they were published as (`user_id`, which
RabbitMQ checks against the connection's), and an entrypoint answers only the services it
names: `@rpc(callers=("notifications",))`. The caller is known from the broker's word,
never from an argument, so a stranger with a broker login gets `CallerRefused`."""

from __future__ import annotations

import functools
import logging

import kombu
from nameko import rpc as nameko_rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)

from shared import topology
from shared.config import SERVICES, broker_user
from shared.consumer import SettlingQueueConsumer

log = logging.getLogger(__name__)


class CallerRefused(Exception):
    """The request did not come from a service this entrypoint answers."""


@functools.cache
def user_of(amqp_uri: str) -> str:
    """The broker user an address connects as. Asked for every RPC answer and publish,
    and kombu parses a whole Connection to say it: once per address is enough."""
    return kombu.Connection(amqp_uri).userid


class StampedPublisher(Publisher):
    """nameko's publisher, stamping each message with the broker user it connects as."""

    def __init__(self, amqp_uri, **options):
        super().__init__(amqp_uri, user_id=user_of(amqp_uri), **options)


class Responder(nameko_rpc.Responder):
    publisher_cls = StampedPublisher


class RpcConsumer(nameko_rpc.RpcConsumer):
    queue_consumer = SettlingQueueConsumer()

    def setup(self):
        super().setup()
        # Replicated over a cluster's nodes, so that losing one leaves RPC working.
        self.queue = topology.rpc_queue(self.container.service_name)

    def handle_result(self, message, result, exc_info):
        # nameko's own, but replying through the stamping Responder.
        config = self.container.config
        responder = Responder(
            config[AMQP_URI_CONFIG_KEY], nameko_rpc.get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(nameko_rpc.Rpc):
    rpc_consumer = RpcConsumer()

    def __init__(self, callers: tuple[str, ...] = SERVICES, **kwargs):
        self.callers = callers
        super().__init__(**kwargs)

    def handle_message(self, body, message):
        # Raised here, the refusal goes back to the caller as a RemoteError (nameko's
        # RpcConsumer replies with any exception of this step) and no worker runs.
        caller = message.properties.get("user_id")
        if caller not in {broker_user(service) for service in self.callers}:
            log.warning("refused a call of %s by broker user %r", self.method_name,
                        str(caller)[:100])
            raise CallerRefused(f"{self.method_name} answers only "
                                f"{', '.join(self.callers)}; not broker user {caller!r}")
        super().handle_message(body, message)

    def handle_result(self, message, worker_ctx, result, exc_info):
        result, exc_info = super().handle_result(message, worker_ctx, result, exc_info)
        # In the worker's green thread: the line carries the caller's request id.
        log.info("answered %s%s", self.method_name,
                 f" with {exc_info[0].__name__}" if exc_info else "")
        return result, exc_info


class ReplyListener(nameko_rpc.ReplyListener):
    queue_consumer = SettlingQueueConsumer()

    def setup(self):
        super().setup()
        # nameko's reply queue is durable, so it stays on the node the service first
        # reached: with that node down the service could not declare it again on another,
        # and its queue consumer, which takes its RPC requests too, stopped. An exclusive
        # queue goes with its connection and is made anew wherever the service connects
        # next; a reply in flight is lost with it, and its caller times out as for any.
        self.queue = kombu.Queue(
            self.queue.name, exchange=self.queue.exchange, routing_key=self.routing_key,
            durable=False, exclusive=True, queue_arguments=self.queue.queue_arguments)


class RpcProxy(nameko_rpc.RpcProxy):
    rpc_reply_listener = ReplyListener()

    def get_dependency(self, worker_ctx):
        return nameko_rpc.ServiceProxy(
            worker_ctx, self.target_service, self.rpc_reply_listener,
            user_id=user_of(self.container.config[AMQP_URI_CONFIG_KEY]), **self.options)


rpc = Rpc.decorator
