"""TLS to Argo CD: the list (httpx) and the GETs of one app (http.client, adapters/app_gets) trust the same
certificates, and the GETs go through a proxy (on httpx) wherever one from the environment applies."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.support.waiting import wait_for
from watcher.adapters import app_gets
from watcher.adapters.argocd import ArgoCDClient, ArgoCDUnavailable
from watcher.settings import ArgoCDSettings
from watcher.sim.controller import Controller
from watcher.sim.server import build_sim_app

APP = {
    "metadata": {"name": "plate-api-stg", "namespace": "argocd"},
    "spec": {"project": "default"},
    "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
}


@pytest.fixture
def tls_argocd(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The simulator over HTTPS with a self-signed certificate for 127.0.0.1: (its URL, the certificate)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=argocd.test"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    controller = Controller("https://git.invalid/gitops", tmp_path / "sim")
    controller.add_static_apps([APP])
    config = uvicorn.Config(
        build_sim_app(controller), host="127.0.0.1", port=0, ssl_certfile=str(cert), ssl_keyfile=str(key)
    )
    config.log_config, config.lifespan = None, "off"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="the HTTPS simulator")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.mark.parametrize(("trust", "works"), [("the bundle", True), ("nothing more", False), ("insecure", True)])
def test_the_list_and_the_gets_trust_the_same_certificates(
    tls_argocd: tuple[str, Path], trust: str, works: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    url, cert = tls_argocd
    assert app_gets.usable(url)
    bundle = cert if trust == "the bundle" else None
    c = ArgoCDClient(ArgoCDSettings(url=url, timeout_seconds=5, ca_bundle=bundle, insecure=trust == "insecure"))
    calls: list[Callable[[], Any]] = [c.list_apps, lambda: c.get_app("plate-api-stg")]
    try:
        for call in calls:
            if works:
                assert call()
            else:
                with pytest.raises(ArgoCDUnavailable):
                    call()
    finally:
        c.close()


def test_gets_go_straight_only_where_no_proxy_or_credentials_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "argocd.internal")
    assert app_gets.usable("https://argocd.example.com")
    assert not app_gets.usable("https://admin:secret@argocd.example.com")  # httpx sends those as basic auth
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    assert not app_gets.usable("https://argocd.example.com")  # httpx goes through the proxy: so do the GETs
    assert app_gets.usable("https://argocd.internal")  # NO_PROXY
    assert app_gets.usable("http://argocd.example.com")  # the proxy is for https only
