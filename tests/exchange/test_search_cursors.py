"""Sealed search cursors: opaque, tamper-proof, bound to the client and search, shared by workers.

Unit tests of :mod:`gateway.exchange.cursor` first, then the gateway end to end: a cursor made
by one app instance (one uvicorn worker) is accepted by another that shares the key
configuration, and refused with the one 422 problem otherwise.
"""

from __future__ import annotations

import base64
import json
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.service import AuditService
from gateway.errors import UnprocessableContent
from gateway.exchange.cursor import (
    KEY_FILE_NAME,
    CursorBinding,
    CursorSealer,
    load_cursor_key,
)
from gateway.settings import Mode, Settings, SettingsError
from tests.conftest import Gateway, make_settings
from tests.exchange.conftest import exchange_headers

COURT_CASE = "(2024)宁0104刑初465号"  # C00000020: at trial, court FY640104 handles it
SEARCH = "/v1/resources/person?case_id=C00000020&limit=1"
PERSONS = ["P0000002001", "P0000002002", "P0000002003", "P0000002004"]
BINDING = CursorBinding("client-a", "FY640104", "f" * 64)
SECRET = "cursor-secret-for-tests-0123456789abcdef"


def _problem(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(UnprocessableContent) as caught:
        call()
    return {"detail": caught.value.detail, **caught.value.extra}


# --- the sealer -------------------------------------------------------------------------------


def test_round_trip_and_opacity() -> None:
    sealer = CursorSealer(bytes(32))
    cursors = [sealer.seal(position, BINDING) for position in ("P1", "P0000000301", "x" * 64)]
    for cursor, position in zip(cursors, ("P1", "P0000000301", "x" * 64), strict=True):
        assert sealer.open(cursor, BINDING) == position
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if len(position) >= 8:  # a 2-character string turns up in ~3 % of random cursors
            assert position.encode() not in raw
            assert position not in cursor
    assert len({len(c) for c in cursors}) == 1  # the length tells nothing of the position
    assert sealer.seal("P1", BINDING) != sealer.seal("P1", BINDING)  # random nonce


@pytest.mark.parametrize(
    "binding",
    [
        CursorBinding("client-b", "FY640104", "f" * 64),
        CursorBinding("client-a", "FY640105", "f" * 64),
        CursorBinding("client-a", "FY640104", "e" * 64),
        # the fields are framed: no shifting of text from one into the next
        CursorBinding("client-aF", "Y640104", "f" * 64),
    ],
    ids=["other-client", "other-agency", "other-search", "shifted"],
)
def test_a_cursor_opens_for_its_own_binding_only(binding: CursorBinding) -> None:
    sealer = CursorSealer(bytes(32))
    cursor = sealer.seal("P0000002002", BINDING)
    assert _problem(lambda: sealer.open(cursor, binding)) == _problem(
        lambda: sealer.open("garbage", BINDING)
    )


def test_every_altered_character_is_refused() -> None:
    sealer = CursorSealer(bytes(32))
    cursor = sealer.seal("P0000002002", BINDING)
    for i, char in enumerate(cursor):
        altered = cursor[:i] + ("A" if char != "A" else "B") + cursor[i + 1 :]
        with pytest.raises(UnprocessableContent):
            sealer.open(altered, BINDING)


def _legacy(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_every_bad_cursor_gets_the_same_problem() -> None:
    sealer = CursorSealer(bytes(32))
    good = sealer.seal("P0000002002", BINDING)
    bad = [
        "",
        "!!!not-base64!!!",
        "A" * 513,
        good[:-4],
        good + "AAAA",
        "B" + good[1:],  # another format version
        CursorSealer(bytes(range(32))).seal("P0000002002", BINDING),  # another key
        _legacy({"k": "search", "a": "P0000002002", "q": "0" * 16}),  # the old readable form
    ]
    problems = [_problem(lambda c=cursor: sealer.open(c, BINDING)) for cursor in bad]
    assert all(p == problems[0] for p in problems)
    assert problems[0]["errors"][0]["field"] == "cursor"
    assert "restart the search from the first page" in problems[0]["detail"]


# --- the key ----------------------------------------------------------------------------------


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"cursor_secret": None, **overrides}
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", **values)


def test_a_secret_gives_every_worker_the_same_key(tmp_path: Path) -> None:
    one = load_cursor_key(_settings(tmp_path / "a", cursor_secret=SECRET))
    two = load_cursor_key(_settings(tmp_path / "b", cursor_secret=SECRET))
    other = load_cursor_key(_settings(tmp_path / "a", cursor_secret=SECRET + "x"))
    assert one == two != other
    assert len(one) == 32
    assert not (tmp_path / "a" / "keys" / KEY_FILE_NAME).exists()  # no file when a secret is set


def test_without_a_secret_the_key_file_is_made_once_and_shared(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    keys: list[bytes] = []

    def start_worker() -> None:
        keys.append(load_cursor_key(settings))

    workers = [threading.Thread(target=start_worker) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1
    path = tmp_path / "keys" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir() if "cursor" in p.name) == [KEY_FILE_NAME]
    assert load_cursor_key(settings) == keys[0]
    assert load_cursor_key(_settings(tmp_path / "elsewhere")) != keys[0]


def test_a_damaged_key_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "keys" / KEY_FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_text("not a key\n")
    with pytest.raises(SettingsError, match="cursor key"):
        load_cursor_key(_settings(tmp_path))


def test_production_refuses_a_short_secret(tmp_path: Path) -> None:
    short = Settings(mode=Mode.PRODUCTION, data_dir=tmp_path, cursor_secret="too-short")
    with pytest.raises(SettingsError, match="GATEWAY_CURSOR_SECRET") as caught:
        load_cursor_key(short)
    assert "too-short" not in str(caught.value)
    assert len(load_cursor_key(_settings(tmp_path, cursor_secret="short"))) == 32  # test mode


# --- end to end: several app instances ----------------------------------------------------------


@contextmanager
def _worker(settings: Settings) -> Iterator[TestClient]:
    """Another app on the same database and keys: what a second uvicorn worker is."""
    with TestClient(create_app(settings)) as client:
        yield client


def _page(client: TestClient | httpx2.Client, headers: dict[str, str], cursor: str | None) -> Any:
    url = SEARCH if cursor is None else f"{SEARCH}&cursor={cursor}"
    return client.get(url, headers=headers)


def _entry(gateway: Gateway, response: Any) -> dict[str, Any]:
    index = int(response.headers["X-Audit-Index"])
    service = AuditService(gateway.client.app.state.runtime.engine)  # type: ignore[attr-defined]
    return service.entry(index).document


def _assert_cursor_problem(gateway: Gateway, response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert [e["field"] for e in body["errors"]] == ["cursor"]
    assert "restart the search from the first page" in body["detail"]
    entry = _entry(gateway, response)
    assert entry["decision"] == "invalid"
    assert entry["upstream"]["status"] is None  # refused before any upstream call
    return {k: body[k] for k in ("type", "title", "status", "detail", "errors")}


@pytest.mark.parametrize("secret", [None, SECRET], ids=["key-file", "secret"])
def test_workers_sharing_the_key_configuration_accept_each_others_cursors(
    exchange_gateway: Callable[..., Gateway], secret: str | None
) -> None:
    gw = exchange_gateway(cursor_secret=secret)
    headers = exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    seen: list[str] = []
    cursor = None
    with _worker(gw.settings) as other:
        for turn in range(10):
            response = _page(gw.client if turn % 2 == 0 else other, headers, cursor)
            assert response.status_code == 200, response.text
            seen.extend(r["person_id"] for r in response.json()["records"])
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
    assert seen == PERSONS


def test_rotating_the_key_asks_to_restart_the_search(
    exchange_gateway: Callable[..., Gateway],
) -> None:
    gw = exchange_gateway(cursor_secret=SECRET)
    headers = exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    cursor = _page(gw.client, headers, None).json()["next_cursor"]
    assert cursor is not None
    rotated = gw.settings.model_copy(update={"cursor_secret": SecretStr(SECRET[::-1])})
    with _worker(rotated) as other:
        stale = _page(other, headers, cursor)
        _assert_cursor_problem(gw, stale)
        fresh = _page(other, headers, None)  # the first page again: works under the new key
        assert fresh.status_code == 200
        assert _page(other, headers, fresh.json()["next_cursor"]).status_code == 200


def test_altered_and_forged_cursors_get_one_clear_422(
    exchange_gateway: Callable[..., Gateway],
) -> None:
    gw = exchange_gateway()
    headers = exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    cursor = _page(gw.client, headers, None).json()["next_cursor"]
    assert cursor is not None
    altered = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    forged = _legacy({"k": "search", "a": "P0000002001", "q": "0" * 16})
    problems = [
        _assert_cursor_problem(gw, _page(gw.client, headers, bad))
        for bad in (altered, forged, "%%%", "A" * 600)
    ]
    assert all(p == problems[0] for p in problems)
    other_search = gw.client.get(
        f"/v1/resources/person?case_id=C00000021&limit=1&cursor={cursor}", headers=headers
    )
    assert _assert_cursor_problem(gw, other_search) == problems[0]


def test_another_clients_cursor_is_useless(exchange_gateway: Callable[..., Gateway]) -> None:
    gw = exchange_gateway()
    gw.register("court_b", "FY640104", ["exchange"])  # same agency, another client
    mine = exchange_headers(gw, "court", "TRIAL", COURT_CASE)
    cursor = _page(gw.client, mine, None).json()["next_cursor"]
    assert cursor is not None
    refused = [
        _assert_cursor_problem(
            gw, _page(gw.client, exchange_headers(gw, name, purpose, case), cursor)
        )
        for name, purpose, case in (
            ("court_b", "TRIAL", COURT_CASE),
            ("police", "INVESTIGATION", COURT_CASE),
        )
    ]
    assert refused[0] == refused[1]
    assert _page(gw.client, mine, cursor).status_code == 200  # still good for its own client
