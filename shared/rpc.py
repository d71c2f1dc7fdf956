"""nameko's RPC between services (an office's contact for notifications, a case file for
an authorised viewer), on queue consumers that survive a broker restart: see
`SettlingQueueConsumer`. Services use `rpc` and `RpcProxy` from here."""

from __future__ import annotations

from nameko import rpc as nameko_rpc

from shared.consumer import SettlingQueueConsumer


class RpcConsumer(nameko_rpc.RpcConsumer):
    queue_consumer = SettlingQueueConsumer()


class Rpc(nameko_rpc.Rpc):
    rpc_consumer = RpcConsumer()


class ReplyListener(nameko_rpc.ReplyListener):
    queue_consumer = SettlingQueueConsumer()


class RpcProxy(nameko_rpc.RpcProxy):
    rpc_reply_listener = ReplyListener()


rpc = Rpc.decorator
