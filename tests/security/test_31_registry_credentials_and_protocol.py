"""Item 6: registry credentials reach only the registry itself, a token realm over HTTPS, or a
plain-HTTP realm on the registry's own host (pysandbox/image/distribution.py); and a malformed
reply on the agent socket is a pysandbox error (AgentGone), never struct.error or IndexError.

The registry and its realms are scripted HTTP servers on loopback: 127.0.0.1 is the registry's
host, 127.0.0.2 another host."""

import array
import json
import os
import socket
import struct
import urllib.request

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pysandbox as modal
from pysandbox import agent
from pysandbox.exception import ImageBuildError, NotFoundError
from pysandbox.image import distribution

from .. import oci

pytestmark = pytest.mark.rootless

CREDENTIALS = {"REGISTRY_USERNAME": "alice", "REGISTRY_PASSWORD": "s3cret"}
BASIC = "Basic YWxpY2U6czNjcmV0"  # alice:s3cret


def _pull(registry, secret=True):
    image = modal.Image.from_registry(f"{registry.host}/private/app:1",
                                      secret=modal.Secret.from_dict(CREDENTIALS) if secret else None)
    return image.build


def _authorizations(server):
    return [headers.get("Authorization") for _, headers in server.requests]


def _bearer_registry(registry, realm):
    """The registry asks for a bearer token from `realm`, and takes only `Bearer tok`."""
    def manifest(request):
        if request.headers.get("Authorization") == "Bearer tok":
            return 404, {}, b""
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="registry"'}, b""
    registry.routes["/v2/private/app/manifests/1"] = manifest


@pytest.fixture
def servers():
    with oci.ScriptedServer("127.0.0.1") as registry, oci.ScriptedServer("127.0.0.1") as same_host, \
            oci.ScriptedServer("127.0.0.2") as foreign:
        for realm in (same_host, foreign):
            realm.routes["/token"] = (200, {"Content-Type": "application/json"}, b'{"token": "tok"}')
        yield registry, same_host, foreign


def test_credentials_never_go_to_a_plain_http_realm_on_another_host(servers):
    registry, _, foreign = servers
    _bearer_registry(registry, f"http://{foreign.host}/token")
    with pytest.raises(ImageBuildError, match="sends registry credentials only to a token realm over HTTPS"):
        _pull(registry)()
    assert foreign.requests == []
    assert BASIC not in _authorizations(registry)  # nor to the registry, which asked for a token


def test_anonymous_token_from_a_foreign_realm_carries_nothing(servers):
    registry, _, foreign = servers
    _bearer_registry(registry, f"http://{foreign.host}/token")
    with pytest.raises(NotFoundError):
        _pull(registry, secret=False)()
    assert _authorizations(foreign) == [None]
    assert _authorizations(registry) == [None, "Bearer tok"]


def test_credentials_go_to_a_realm_on_the_registry_host(servers):
    registry, same_host, _ = servers
    _bearer_registry(registry, f"http://{same_host.host}/token")
    with pytest.raises(NotFoundError):
        _pull(registry)()
    assert _authorizations(same_host) == [BASIC]
    assert _authorizations(registry) == [None, "Bearer tok"]


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "ftp://127.0.0.1/token", "token", "http:///token"])
def test_a_realm_must_be_an_http_url(servers, realm):
    registry, _, _ = servers
    _bearer_registry(registry, realm)
    with pytest.raises(ImageBuildError, match="not an http\\(s\\) URL"):
        _pull(registry, secret=False)()


def test_basic_credentials_are_not_carried_across_a_redirect(servers):
    """A registry that takes Basic credentials redirects the manifest to another host: the
    redirected request goes without them."""
    registry, _, foreign = servers

    def manifest(request):
        if request.headers.get("Authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        return 307, {"Location": f"http://{foreign.host}/elsewhere"}, b""
    registry.routes["/v2/private/app/manifests/1"] = manifest
    with pytest.raises(NotFoundError):
        _pull(registry)()
    assert _authorizations(registry) == [None, BASIC]
    assert [path for path, _ in foreign.requests] == ["/elsewhere"]
    assert _authorizations(foreign) == [None]


@pytest.mark.parametrize("token, match", [
    ("tok\r\nX-Injected: 1", "malformed token"), ("a b", "malformed token"), (7, "malformed token"),
])
def test_a_malformed_token_is_refused(servers, token, match):
    registry, same_host, _ = servers
    _bearer_registry(registry, f"http://{same_host.host}/token")
    same_host.routes["/token"] = (200, {}, json.dumps({"token": token}).encode())
    with pytest.raises(ImageBuildError, match=match):
        _pull(registry)()


def test_an_endless_token_answer_is_cut_at_the_bound(servers, monkeypatch):
    registry, same_host, _ = servers
    _bearer_registry(registry, f"http://{same_host.host}/token")
    same_host.routes["/token"] = (200, {"Content-Length": None}, b'{"token": "' + b"t" * 4096 + b'"}')
    monkeypatch.setenv("PYSANDBOX_REGISTRY_MANIFEST_MAX", "1024")
    with pytest.raises(ImageBuildError, match="PYSANDBOX_REGISTRY_MANIFEST_MAX"):
        _pull(registry)()


@pytest.mark.parametrize("realm, base, allowed", [
    ("https://auth.docker.io/token", "https://registry-1.docker.io", True),
    ("https://evil.example.com/token", "http://127.0.0.1:5000", True),  # TLS to whoever the realm is
    ("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", True),  # the registry's own host
    ("http://LOCALHOST/token", "http://localhost:5000", True),
    ("http://127.0.0.2/token", "http://127.0.0.1:5000", False),
    ("http://registry.example.com/token", "https://registry.example.com", False),  # no step down to plain HTTP
    ("http://evil.example.com/token", "http://127.0.0.1:5000", False),
    ("ftp://127.0.0.1/token", "http://127.0.0.1:5000", False),
])
def test_the_credentials_rule(realm, base, allowed):
    assert distribution.credentials_allowed(realm, base) is allowed


@pytest.mark.parametrize("old, new, kept", [
    ("https://registry.example.com/v2/a", "https://registry.example.com/v2/b", True),
    ("https://registry.example.com/v2/a", "https://cdn.example.com/blob", False),
    ("https://registry.example.com/v2/a", "https://registry.example.com:8443/blob", False),
    ("http://127.0.0.1:5000/v2/a", "http://127.0.0.1:5001/blob", False),
])
def test_redirects_keep_authorization_within_one_origin(old, new, kept):
    request = urllib.request.Request(old, headers={"Authorization": "Bearer tok"})
    redirected = distribution._Redirects().redirect_request(request, None, 307, "", {}, new)
    assert redirected.has_header("Authorization") is kept


@pytest.mark.parametrize("new", ["http://cdn.example.com/blob", "ftp://cdn.example.com/blob",
                                 "file:///etc/passwd"])
def test_redirects_never_step_down_from_https(new):
    request = urllib.request.Request("https://registry.example.com/v2/a", headers={"Authorization": "Bearer tok"})
    with pytest.raises(ImageBuildError, match="refused"):
        distribution._Redirects().redirect_request(request, None, 307, "", {}, new)


# Malformed agent replies ---------------------------------------------------------------------

def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def _send(sock, data, nfds):
    """`data` as one datagram with `nfds` descriptors of /dev/null attached."""
    fds = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(nfds)]
    try:
        if fds:
            socket.send_fds(sock, [data], fds)
        else:
            sock.send(data)
    finally:
        for fd in fds:
            os.close(fd)


def _header(kind, body, *, magic=agent.MAGIC, version=agent.VERSION, length=None):
    return agent.HEADER.pack(magic, version, kind, agent.HEADER.size + len(body) if length is None else length) + body


_KINDS = st.sampled_from([agent.REP_OK, agent.REP_STARTED, agent.REP_EXITED, agent.REP_FD, agent.REP_ERROR, 0, 65535])
_DATAGRAMS = st.one_of(
    st.binary(min_size=1, max_size=64),  # anything at all
    st.builds(lambda kind, body: _header(kind, body), _KINDS, st.binary(max_size=32)),  # well framed
    st.builds(lambda kind, body, length: _header(kind, body, length=length),  # a length that lies
              _KINDS, st.binary(max_size=32), st.integers(0, 2**32 - 1)),
    st.builds(lambda kind, body, magic, version: _header(kind, body, magic=magic, version=version),
              _KINDS, st.binary(max_size=16), st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1)),
    st.builds(lambda kind, body, cut: _header(kind, body)[:cut], _KINDS, st.binary(max_size=16),
              st.integers(1, agent.HEADER.size - 1)),  # truncated
)


@pytest.fixture(scope="module")
def pair():
    client, init = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    init.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * agent.MAX_MESSAGE)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * agent.MAX_MESSAGE)
    yield client, init
    client.close()
    init.close()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_DATAGRAMS, nfds=st.integers(0, 6))
@example(data=b"\x00", nfds=0)
@example(data=_header(agent.REP_EXITED, b"\x00\x00"), nfds=0)
@example(data=_header(agent.REP_ERROR, b""), nfds=0)
@example(data=_header(agent.REP_FD, b""), nfds=0)
@example(data=_header(agent.REP_OK, b""), nfds=5)
@example(data=_header(agent.REP_STARTED, b"\x01\x00\x00\x00"), nfds=0)
def test_any_reply_is_a_reply_or_agent_gone(pair, data, nfds):
    """Whatever init sends, try_receive returns a well-formed Reply or raises AgentGone,
    and closes every fd that came with a reply it refused."""
    client, init = pair
    before = _open_fds()
    _send(init, data, nfds)
    try:
        reply = agent.try_receive(client)
    except agent.AgentGone:
        assert _open_fds() == before
        return
    assert reply is not None
    try:
        kind = struct.unpack_from("=H", data, 6)[0]
        assert reply.kind == kind and len(reply.fds) == (1 if kind == agent.REP_FD else 0)
        if kind == agent.REP_EXITED:
            assert reply.unpack(agent.EXITED) == agent.EXITED.unpack(reply.body)
        try:
            reply.raise_for_error()
            assert kind != agent.REP_ERROR
        except agent.AgentError as exc:
            assert kind == agent.REP_ERROR and isinstance(exc.errno, int)
    finally:
        for fd in reply.fds:
            os.close(fd)


def test_a_reply_longer_than_any_is_refused(pair):
    client, init = pair
    init.send(_header(agent.REP_OK, bytes(agent.MAX_MESSAGE)))
    with pytest.raises(agent.AgentGone, match="longer than any reply"):
        agent.try_receive(client)


def test_a_short_body_for_a_layout_is_agent_gone():
    reply = agent.Reply(agent.REP_OK, b"\x00" * 8, [])
    with pytest.raises(agent.AgentGone, match="8 bytes where 32 are needed"):
        reply.unpack(struct.Struct("=IIIIQq"))


def test_end_of_connection_is_agent_gone():
    client, init = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    init.close()
    with client, pytest.raises(agent.AgentGone, match="closed"):
        agent.try_receive(client)


def test_nothing_waiting_is_none(pair):
    assert agent.try_receive(pair[0]) is None


def test_fds_sent_alone_are_closed(pair):
    """A datagram of no bytes with fds attached: refused, fds closed."""
    client, init = pair
    before = _open_fds()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        init.sendmsg([b""], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [null]).tobytes())])
    finally:
        os.close(null)
    with pytest.raises(agent.AgentGone):
        agent.try_receive(client)
    assert _open_fds() == before
