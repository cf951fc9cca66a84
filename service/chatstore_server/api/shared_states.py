"""SessionService methods on shared states (an app's, a user's within an app):
GetSharedState, UpdateSharedState."""

from __future__ import annotations

from typing import Any

import grpc

from chatstore.v1 import session_service_pb2, shared_state_pb2
from chatstore_server.api import convert
from chatstore_server.api.session_fields import SHARED_STATE_NAME, shared_state_patch
from chatstore_server.api.validation import Checker
from chatstore_server.store import SharedStateRepository

Context = grpc.aio.ServicerContext[Any, Any]


class SharedStateMethods:
    """GetSharedState, UpdateSharedState."""

    _shared_states: SharedStateRepository

    async def GetSharedState(  # noqa: N802 (gRPC method name)
        self, request: session_service_pb2.GetSharedStateRequest, context: Context
    ) -> shared_state_pb2.SharedState:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        if SHARED_STATE_NAME.fullmatch(request.name) is None:
            check.fail("name", 'must be "apps/{app}/state" or "apps/{app}/users/{user}/state"')
        check.done()
        return convert.shared_state_to_proto(await self._shared_states.get(tenant_id, request.name))

    async def UpdateSharedState(  # noqa: N802
        self, request: session_service_pb2.UpdateSharedStateRequest, context: Context
    ) -> shared_state_pb2.SharedState:
        check = Checker()
        tenant_id = check.tenant_id(request.tenant_id)
        if not request.HasField("patch"):
            check.fail("patch", "required")
        patch = shared_state_patch(check, request.patch, "patch")
        check.done()
        assert patch is not None
        return convert.shared_state_to_proto(
            await self._shared_states.update(tenant_id, patch, "patch.patch_json")
        )
