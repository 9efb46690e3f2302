"""The user-token client CloudAdapter asks for on every turn, built only when an OAuth
prompt first calls it, so that the turns of a bot without sign-in never pay for one."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from botframework.connector.auth import UserTokenClient


class LazyUserTokenClient(UserTokenClient):
    """The SDK's user-token client, built the first time an OAuth prompt needs it."""

    def __init__(self, build: Callable[[], Awaitable[UserTokenClient]]) -> None:
        self._build = build
        self._client: Optional[UserTokenClient] = None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = await self._build()
        return await getattr(self._client, name)(*args, **kwargs)

    async def get_user_token(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_user_token", *args, **kwargs)

    async def get_sign_in_resource(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_sign_in_resource", *args, **kwargs)

    async def sign_out_user(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("sign_out_user", *args, **kwargs)

    async def get_token_status(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_token_status", *args, **kwargs)

    async def get_aad_tokens(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_aad_tokens", *args, **kwargs)

    async def exchange_token(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("exchange_token", *args, **kwargs)
