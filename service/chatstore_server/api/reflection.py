"""Server reflection (grpc.reflection.v1alpha) that also finds methods and fields.

grpcio-reflection answers `file_containing_symbol` from the descriptor pool, whose
`FindFileContainingSymbol` knows messages, enums, services and extensions but not a
service's methods or a message's fields, so `grpcurl describe
chatstore.v1.SessionService.GetSession` got "Symbol not found". `MemberAwarePool` looks
those up through their parent. Every type the server can send is in the pool
(`api.errors` imports `google.rpc.ErrorInfo` and `BadRequest`, so `buf curl` and grpcurl
decode error details); the service list names SessionService, health and reflection.

Reflection, like health, needs no credential: it serves the public API schema (the
protos in this repository), never data.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, descriptor_pool
from grpc_reflection.v1alpha import reflection


class MemberAwarePool:
    """A descriptor pool whose `FindFileContainingSymbol` also resolves
    `package.Service.Method` and `package.Message.field`; everything else is the pool's.
    """

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> descriptor.FileDescriptor:  # noqa: N802
        """The file defining `symbol`.

        Raises:
            KeyError: No such symbol (reflection answers NOT_FOUND).
        """
        try:
            found: descriptor.FileDescriptor = self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            parent, _, member = symbol.rpartition(".")
            if not parent:
                raise
            for find, members in (
                (self._pool.FindServiceByName, "methods_by_name"),
                (self._pool.FindMessageTypeByName, "fields_by_name"),
            ):
                try:
                    owner = find(parent)
                except KeyError:
                    continue
                if member in getattr(owner, members):
                    file: descriptor.FileDescriptor = owner.file
                    return file
            raise
        return found


def servicer(service_names: list[str]) -> reflection.aio.ReflectionServicer:
    """The reflection service listing `service_names`, over the default pool."""
    pool: Any = MemberAwarePool(descriptor_pool.Default())
    return reflection.aio.ReflectionServicer(service_names, pool=pool)
