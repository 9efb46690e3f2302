"""The ceilings for a cloud store: its Azure SDK, or the engine's own item store, doing
only a usual turn's storage calls.

Each worker repeats one "turn": read its conversation, user and membership items in
parallel, then replace the conversation item if its ETag still matches, at the sizes the
bot stores. No bot and no HTTP in or out; prints one JSON line of results. ``--store
blob`` is the SDK; ``--store engine-blob`` the bot's ``ItemStore`` (its single REST calls).

    python -m bench.raw_client --store blob --warmup 1 --duration 3   # settings from the env
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from azure.core.exceptions import ResourceExistsError

from state_engine.stores.azure_transport import transport

Turn = Callable[[int], Awaitable[None]]
#: Characters of the conversation, user and membership items: about what the bot stores
#: in an echo conversation (bench.run passes the sizes it measured instead).
DEFAULT_SIZES = "1500,160,150"


def parse_sizes(text: str) -> Tuple[int, int, int]:
    """The three sizes of a ``--sizes`` text such as DEFAULT_SIZES."""
    conversation, user, membership = (int(size) for size in text.split(","))
    return conversation, user, membership


def _document(size: int, worker: int) -> Dict[str, Any]:
    """A JSON object of about ``size`` characters."""
    base = {"$partition": 1, "records": {f"raw/{worker}": {"e_tag": "0" * 16, "value": {"text": ""}}}}
    pad = max(0, size - len(json.dumps(base)))
    base["records"][f"raw/{worker}"]["value"]["text"] = "x" * pad
    return base


def _ids(run: str, worker: int) -> Tuple[str, str, str]:
    return (f"emulator/conversations/{run}-c{worker}", f"emulator/users/{run}-u{worker}",
            f"emulator/users/{run}-u{worker}/conversations/{run}-c{worker}")


async def _cosmos(workers: int, sizes: Tuple[int, int, int], run: str) -> Tuple[Turn, Callable[[], Awaitable[None]]]:
    from azure.core import MatchConditions
    from azure.cosmos import PartitionKey
    from azure.cosmos.aio import CosmosClient

    client = CosmosClient(
        os.environ["COSMOS_DB_URI"], os.environ["COSMOS_DB_PRIMARY_KEY"],
        enable_endpoint_discovery=False,
        transport=transport(3, 3),
        retry_total=1, retry_backoff_max=1, retry_backoff_factor=0.2, logging_enable=False,
    )
    database = await client.create_database_if_not_exists(os.environ["COSMOS_DB_DATABASE_ID"])
    container = await database.create_container_if_not_exists(
        os.environ["COSMOS_DB_CONTAINER_ID"] + "raw", PartitionKey(path="/id"))
    etags: Dict[int, str] = {}
    bodies: Dict[int, Dict[str, Any]] = {}
    for worker in range(workers):
        for item_id, size in zip(_ids(run, worker), sizes):
            body = {"id": item_id.replace("/", "|"), "realId": item_id, "document": _document(size, worker)}
            written = await container.upsert_item(body)
            if item_id == _ids(run, worker)[0]:
                etags[worker], bodies[worker] = written["_etag"], body

    async def turn(worker: int) -> None:
        ids = [i.replace("/", "|") for i in _ids(run, worker)]
        found = await asyncio.gather(*(container.read_item(i, partition_key=i) for i in ids))
        written = await container.replace_item(
            ids[0], bodies[worker], etag=found[0]["_etag"], match_condition=MatchConditions.IfNotModified)
        etags[worker] = written["_etag"]

    return turn, client.close


async def _blob(workers: int, sizes: Tuple[int, int, int], run: str) -> Tuple[Turn, Callable[[], Awaitable[None]]]:
    """Single REST calls through the container client's own pipeline: the cheapest the SDK
    offers (its ``BlobClient`` per blob costs about twice the CPU)."""
    from urllib.parse import quote

    from azure.core.pipeline.transport import HttpRequest
    from azure.storage.blob.aio import BlobServiceClient, LinearRetry

    from state_engine.stores.blob import BlobItems

    service = BlobServiceClient.from_connection_string(
        os.environ["BLOB_CONNECTION_STRING"],
        retry_policy=LinearRetry(backoff=0.2, retry_total=1, random_jitter_range=0.1),
        transport=transport(3, 3),
    )
    container = service.get_container_client(os.environ["BLOB_CONTAINER_NAME"] + "raw")
    with contextlib.suppress(ResourceExistsError):
        await container.create_container()

    async def send(method: str, name: str, headers: Dict[str, str], body: Optional[bytes] = None) -> Any:
        request = HttpRequest(method, f"{container.url}/{quote(name, safe='~/')}",
                              headers={"x-ms-version": container.api_version, **headers})
        if body is not None:
            request.set_bytes_body(body)
        response = (await container._pipeline.run(request)).http_response
        if response.status_code >= 300:
            raise RuntimeError(f"Blob storage answered {response.status_code}")
        return response

    async def put(name: str, data: bytes, headers: Dict[str, str]) -> None:
        await send("PUT", name, {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream",
                                 "x-ms-meta-itemid": "raw", **headers}, data)

    async def get(name: str) -> Tuple[bytes, str]:
        response = await send("GET", name, {"x-ms-range": f"bytes=0-{BlobItems.max_item_bytes}"})
        return response.body(), response.headers["ETag"]

    names: Dict[int, List[str]] = {}
    data: Dict[int, bytes] = {}
    for worker in range(workers):
        names[worker] = [quote(i, safe="") for i in _ids(run, worker)]
        for name, size in zip(names[worker], sizes):
            await put(name, json.dumps(_document(size, worker)).encode(), {})
        data[worker] = json.dumps(_document(sizes[0], worker)).encode()

    async def turn(worker: int) -> None:
        found = await asyncio.gather(*(get(name) for name in names[worker]))
        await put(names[worker][0], data[worker], {"If-Match": found[0][1]})

    return turn, service.close


async def _table(workers: int, sizes: Tuple[int, int, int], run: str) -> Tuple[Turn, Callable[[], Awaitable[None]]]:
    from azure.core import MatchConditions
    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableClient

    table = TableClient.from_connection_string(
        os.environ["TABLE_CONNECTION_STRING"], os.environ["TABLE_NAME"] + "raw",
        retry_total=1, retry_backoff_factor=0.2, transport=transport(3, 3),
    )
    with contextlib.suppress(ResourceExistsError):
        await table.create_table()
    entities: Dict[int, Dict[str, Any]] = {}
    for worker in range(workers):
        for item_id, size in zip(_ids(run, worker), sizes):
            key = item_id.replace("/", "*2f")
            entity = {"PartitionKey": key, "RowKey": "", "Key": item_id, "DocumentParts": 1,
                      "Document0": json.dumps(_document(size, worker))}
            await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            if item_id == _ids(run, worker)[0]:
                entities[worker] = entity

    async def turn(worker: int) -> None:
        keys = [i.replace("/", "*2f") for i in _ids(run, worker)]
        found = await asyncio.gather(*(table.get_entity(key, "") for key in keys))
        await table.update_entity(entities[worker], mode=UpdateMode.REPLACE,
                                  etag=found[0].metadata["etag"], match_condition=MatchConditions.IfNotModified)

    return turn, table.close


#: The container or table setting of each store: the raw clients use their own, beside the bot's.
_RESOURCE_SETTING = {"cosmos": "COSMOS_DB_CONTAINER_ID", "blob": "BLOB_CONTAINER_NAME", "table": "TABLE_NAME"}


def _engine(store: str) -> Callable[[int, Tuple[int, int, int], str], Awaitable[Tuple[Turn, Callable[[], Awaitable[None]]]]]:
    """The bot's own ``ItemStore`` for ``store``, making the same calls with no bot around it."""

    async def start(workers: int, sizes: Tuple[int, int, int], run: str) -> Tuple[Turn, Callable[[], Awaitable[None]]]:
        from state_engine.conditions import ANY, if_match
        from state_engine.stores import open_items, read_backend_settings
        from state_engine.stores.items import Put

        env = dict(os.environ)
        env[_RESOURCE_SETTING[store]] += "eng"
        items = open_items(store, read_backend_settings(store, env), request_timeout=3.0)
        texts: Dict[int, str] = {}
        for worker in range(workers):
            for item_id, size in zip(_ids(run, worker), sizes):
                await items.put(Put(item_id, json.dumps(_document(size, worker)), ANY))
            texts[worker] = json.dumps(_document(sizes[0], worker))

        async def turn(worker: int) -> None:
            ids = _ids(run, worker)
            found = await items.get(ids)
            await items.put(Put(ids[0], texts[worker], if_match(found[ids[0]].e_tag)))

        return turn, items.close

    return start


STORES = {
    "cosmos": _cosmos, "blob": _blob, "table": _table,
    **{f"engine-{store}": _engine(store) for store in _RESOURCE_SETTING},
}


async def measure(store: str, workers: int, warmup: float, duration: float, sizes: Tuple[int, int, int]) -> Dict[str, Any]:
    run = os.urandom(4).hex()
    turn, close = await STORES[store](workers, sizes, run)
    try:
        async def load(seconds: float, record: bool) -> Tuple[List[float], int]:
            latencies: List[float] = []
            errors = 0
            end = time.perf_counter() + seconds

            async def worker(number: int) -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    began = time.perf_counter()
                    try:
                        await turn(number)
                    except Exception:  # a failed turn is counted, not measured
                        errors += 1
                        continue
                    finished = time.perf_counter()
                    if record and finished <= end:
                        latencies.append(finished - began)

            await asyncio.gather(*(worker(n) for n in range(workers)))
            return latencies, errors

        await load(warmup, False)
        cpu_started = time.process_time()
        latencies, errors = await load(duration, True)
        cpu = time.process_time() - cpu_started
    finally:
        await close()
    return {"turns": len(latencies), "seconds": duration, "latencies": latencies, "errors": errors,
            "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=sorted(STORES), required=True)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help="characters of the conversation, user and membership items")
    args = parser.parse_args()
    from state_engine.stores.azure_logging import quiet_azure_logging

    quiet_azure_logging()
    result = asyncio.run(measure(args.store, args.workers, args.warmup, args.duration, parse_sizes(args.sizes)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
