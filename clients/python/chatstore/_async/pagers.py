"""Pagers: lazy iteration over list results, one page fetched at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from chatstore._async import io
from chatstore._base import Page

T = TypeVar("T")


class AsyncPager(Generic[T]):
    """Iterate the items of a list call across pages, fetching each page on demand.

    `async for item in pager` yields every item; `async for page in pager.pages()`
    yields whole pages. Nothing is fetched until iteration starts, and a pager can
    be iterated once.
    """

    def __init__(self, fetch: io.PageFetch[T], page_token: str = "") -> None:
        self._fetch = fetch
        self._token = page_token

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield each page, starting at the pager's `page_token`."""
        while True:
            page = await self._fetch(self._token)
            self._token = page.next_page_token
            yield page
            if not page.next_page_token:
                return

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item
