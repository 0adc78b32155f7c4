"""What the push routes take, for their OpenAPI description: the bodies Pub/Sub and SNS send.

Each schema is what api/push.py checks before it takes a message in (anything else is a 400, or
for SNS a 403), no more: a pushed event that is not valid is still taken, into the quarantine.
"""

from __future__ import annotations

from typing import Any

# What base64.b64decode(validate=True) takes: the standard alphabet, padded to 4 characters.
BASE64 = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
MESSAGE_ID = {"type": "string", "minLength": 1}

PUBSUB_ENVELOPE: dict[str, Any] = {
    "title": "PubSubPush",
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "string",
                    "pattern": BASE64,
                    "description": "One JSON event, base64-encoded (absent: an empty one).",
                },
                "messageId": {**MESSAGE_ID, "description": "Or `message_id`."},
                # Read by Pub/Sub's clients, not here: described, whatever they hold.
                "attributes": {"description": "The message's attributes (not read)."},
                "publishTime": {"description": "When Pub/Sub took the message (not read)."},
            },
            # messageId wins; message_id is read only without it.
            "anyOf": [
                {"required": ["messageId"]},
                {"required": ["message_id"], "properties": {"message_id": MESSAGE_ID}},
            ],
        },
        "subscription": {"description": "The push subscription's name (not read)."},
    },
}

SNS_MESSAGE: dict[str, Any] = {
    "title": "SnsMessage",
    "type": "object",
    "description": "A message as SNS sends it; only a validly signed one for a configured topic "
    "is taken.",
    "required": [
        "Type",
        "MessageId",
        "TopicArn",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
    ],
    "properties": {
        name: {"type": "string"}
        for name in (
            "Type",
            "MessageId",
            "TopicArn",
            "Subject",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
            "SubscribeURL",
            "Token",
            "UnsubscribeURL",
        )
    },
}

SNS_MESSAGE_TYPE: dict[str, Any] = {
    "name": "x-amz-sns-message-type",
    "in": "header",
    "required": True,
    "description": "The message's Type, as SNS sends it.",
    "schema": {
        "type": "string",
        "enum": ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"],
    },
}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}
