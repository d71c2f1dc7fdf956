"""What notifications' HTTP endpoints answer: the marshmallow schemas behind their
responses and their OpenAPI."""

from __future__ import annotations

from marshmallow import Schema, fields


class DeadLetter(Schema):
    delivery_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    about_type = fields.String(required=True)
    channel = fields.String(required=True)
    recipient_role = fields.String(required=True)
    recipient = fields.String(required=True, metadata={
        "description": "citizen, an office id or a webhook id; never an address"})
    message = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_error = fields.String(allow_none=True)
    due_at = fields.DateTime(required=True)
    finished_at = fields.DateTime(allow_none=True)


class Requeued(Schema):
    delivery_id = fields.UUID(required=True)
    state = fields.String(required=True)
