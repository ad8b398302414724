"""Schemathesis hooks for the contract check.

An Idempotency-Key names one request: sent again with another body, the
daemon answers 422 `idempotency_key_reused`, as the IETF Idempotency-Key
draft asks. Generated cases are independent, so a schema-valid key drawn twice
(`null`, `0`) would meet that answer for valid data; a valid key is made
unique per case instead. Keys generated to break the schema stay as drawn.
"""

import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if key is None or case.meta is None or case.meta.is_negative_at(ParameterLocation.HEADER):
        return
    headers["Idempotency-Key"] = f"{key[:200]}.{uuid.uuid4().hex}"
