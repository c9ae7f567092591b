"""Random payloads thrown at the real server: never a 5xx, never a crash.

Hypothesis builds V1 and V2 bodies from the real shapes with every field's type, size and
content varied (and raw bytes that are not JSON at all), V2 bodies in the binary tensor
extension too (valid ones, and ones with bytes that are not UTF-8, wrong sizes, a wrong JSON
length, cut short), posts them to the KServe server on 127.0.0.1 and checks that each answer
is a 2xx or a 4xx with a message, and that the server is still up afterwards. Hostile bodies
(lone surrogates in every parsed, logged or echoed field, nesting thousands deep, integers of
thousands of digits) go through every decoder: JSON, the fallback for other content types,
and binary CloudEvents; each is followed on the same connection by a valid request.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import MODEL, RunningServer

pytestmark = pytest.mark.slow
V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
# Lone surrogates (category Cs), which JSON can carry as "\ud800" escapes, and control characters.
hostile_texts = st.text(st.characters(categories=["Cs", "Cc", "L"]), min_size=1, max_size=12)
texts = (st.text(max_size=60) | st.text(min_size=600, max_size=2000) | json_scalars
         | hostile_texts)  # fmt: skip
CLOUDEVENT = {"ce-specversion": "1.0", "ce-type": "t", "ce-source": "/s", "ce-id": "1"}
CONTENT_TYPES = st.sampled_from([
    {"content-type": "application/json"},
    {"content-type": "text/plain"},
    {},
    {**CLOUDEVENT, "content-type": "application/json", "ce-contenttype": "application/json"},
    {**CLOUDEVENT, "content-type": "application/json"},
    {**CLOUDEVENT, "content-type": "text/plain"},
])  # fmt: skip


def item_ids(known: list[str]) -> st.SearchStrategy[Any]:
    ids = st.sampled_from(known) | st.text(max_size=20) | json_scalars | hostile_texts
    return st.lists(ids, max_size=30) | st.lists(st.sampled_from(known), min_size=1001,
                                                  max_size=1100) | json_values  # fmt: skip


def v1_bodies(known: list[str]) -> st.SearchStrategy[Any]:
    instance = st.fixed_dictionaries(
        {},
        optional={
            "query": texts,
            "locale": texts,
            "item_ids": item_ids(known),
            "extra": json_values,
        },
    )
    return (
        st.fixed_dictionaries({"instances": st.lists(instance | json_values, max_size=3)})
        | json_values
    )


def v2_bodies(known: list[str]) -> st.SearchStrategy[Any]:
    tensor = st.fixed_dictionaries(
        {"name": st.sampled_from(["query", "locale", "item_ids", "other"]) | st.text(max_size=8),
         "datatype": st.sampled_from(["BYTES", "FP32", "INT64"]) | json_scalars,
         "shape": st.lists(st.integers(-2, 2000), max_size=3) | json_values,
         "data": st.lists(st.sampled_from(known) | texts, max_size=20) | json_values},
    )  # fmt: skip
    request_id = st.none() | st.text(max_size=20) | hostile_texts | json_scalars
    return (
        st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=4)}, optional={"id": request_id})
        | json_values
    )


@st.composite
def malformed_structures(draw: st.DrawFn, known: list[str]) -> bytes:
    """A V1 body with, somewhere in it, nesting thousands deep or an integer of thousands of
    digits, or cut off; the rest valid."""
    depth = draw(st.integers(1, 5000))
    nested = "[" * depth + "]" * depth
    huge = "9" * draw(st.integers(1, 6000))
    odd = draw(st.sampled_from([nested, huge, f'{{"a": {nested}}}', f"-{huge}.5e{huge}"]))
    ids = json.dumps(draw(st.lists(st.sampled_from(known), min_size=1, max_size=3)))
    where = draw(st.sampled_from(["query", "item_ids", "locale", "instances", "extra"]))
    fields = {"query": '"q"', "item_ids": ids, "locale": '"en"', "extra": "0"}
    if where == "instances":
        body = f'{{"instances": {odd}}}'
    else:
        fields[where] = odd
        body = '{"instances": [{' + ",".join(f'"{k}": {v}' for k, v in fields.items()) + "}]}"
    raw = body.encode()
    return draw(st.just(raw) | st.integers(0, len(raw)).map(lambda n: raw[:n]))


@st.composite
def v2_binary_requests(draw: st.DrawFn, known: list[str]) -> tuple[bytes, dict[str, str]]:
    """A binary-extension V2 body and its headers; sizes, lengths and bytes right or not."""
    element = (st.sampled_from(known).map(str.encode) | st.text(max_size=30).map(str.encode)
               | st.binary(max_size=30))  # fmt: skip
    names = st.sampled_from(["query", "locale", "item_ids"]) | st.text(max_size=8)
    inputs, raw = [], b""
    for name in draw(st.lists(names, max_size=4)):
        values = draw(st.lists(element, max_size=20))
        data = b"".join(struct.pack("<I", len(v)) + v for v in values)
        inputs.append({
            "name": name,
            "datatype": draw(st.sampled_from(["BYTES", "BYTES", "FP32", "INT64"])),
            "shape": draw(st.just([len(values)]) | st.lists(st.integers(-2, 40), max_size=3)),
            "parameters": {"binary_data_size": draw(st.just(len(data))
                                                    | st.integers(-5, len(data) + 50))},
        })  # fmt: skip
        raw += data
    head = json.dumps({"inputs": inputs}).encode()
    json_length = draw(st.just(str(len(head))) | st.integers(-5, len(head) + 20).map(str)
                       | st.text(alphabet="0123456789-x", max_size=5))  # fmt: skip
    body = head + raw
    body = draw(st.just(body) | st.integers(0, len(body)).map(lambda n: body[:n]))
    content_type = draw(st.sampled_from(["application/octet-stream", "application/json"]))
    return body, {"inference-header-content-length": json_length, "content-type": content_type}


def _assert_handled(server: RunningServer, r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    if r.status_code >= 400:
        assert r.text.strip(), "a 4xx must say what is wrong"
    assert server.proc.poll() is None, "the server died"


def _still_serves(server: RunningServer, client: httpx.Client) -> None:
    """A valid request on the same connection: a bad one must not have cost it."""
    body = {"instances": [{"query": "red vase", "item_ids": server.item_ids[:2]}]}
    r = client.post(V1, json=body)
    assert r.status_code == 200, r.text[:300]


@pytest.fixture(scope="module")
def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base, timeout=30)


def test_random_v1_payloads_get_no_5xx(server: RunningServer, client: httpx.Client) -> None:
    @FUZZ
    @given(body=v1_bodies(server.item_ids[:50]))
    def check(body: Any) -> None:
        _assert_handled(server, client.post(V1, content=json.dumps(body).encode()))

    check()


def test_random_v2_payloads_get_no_5xx(server: RunningServer, client: httpx.Client) -> None:
    @FUZZ
    @given(body=v2_bodies(server.item_ids[:50]))
    def check(body: Any) -> None:
        headers = {"content-type": "application/json"}
        _assert_handled(server, client.post(V2, content=json.dumps(body).encode(),
                                            headers=headers))  # fmt: skip

    check()


def test_random_bytes_get_no_5xx(server: RunningServer, client: httpx.Client) -> None:
    @FUZZ
    @given(raw=st.binary(max_size=300), path=st.sampled_from([V1, V2]),
           json_type=st.booleans())  # fmt: skip
    def check(raw: bytes, path: str, json_type: bool) -> None:
        headers = {"content-type": "application/json"} if json_type else {}
        _assert_handled(server, client.post(path, content=raw, headers=headers))

    check()


def test_random_v2_binary_extension_bodies_get_no_5xx(
    server: RunningServer, client: httpx.Client
) -> None:
    @FUZZ
    @given(request=v2_binary_requests(server.item_ids[:50]))
    def check(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        _assert_handled(server, client.post(V2, content=body, headers=headers))

    check()


def test_malformed_structure_through_every_decoder_gets_no_5xx(
    server: RunningServer, client: httpx.Client
) -> None:
    @FUZZ
    @given(raw=malformed_structures(server.item_ids[:50]), headers=CONTENT_TYPES)
    def check(raw: bytes, headers: dict[str, str]) -> None:
        _assert_handled(server, client.post(V1, content=raw, headers=headers))
        _still_serves(server, client)

    check()


def test_random_v1_bodies_through_every_decoder_get_no_5xx(
    server: RunningServer, client: httpx.Client
) -> None:
    """V1 bodies (lone surrogates and control characters in every field) with any content
    type, binary CloudEvents included."""

    @FUZZ
    @given(body=v1_bodies(server.item_ids[:50]), headers=CONTENT_TYPES)
    def check(body: Any, headers: dict[str, str]) -> None:
        _assert_handled(server, client.post(V1, content=json.dumps(body).encode(), headers=headers))
        _still_serves(server, client)

    check()
