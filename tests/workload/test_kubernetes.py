"""Names from the Kubernetes API: a TLS API server on 127.0.0.1 with a test CA serves a
PodList and a PersistentVolumeList (fixtures/README.md); the names reach /metrics."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from devkit.cgroupfs import CONTAINER_ID, POD_CONTAINER, POD_UID
from nitrometer import metrics as m
from nitrometer.agent import kubernetes
from nitrometer.agent.main import kubernetes_directory
from tests.agent.conftest import promtool_check
from tests.agent.test_mtls import issue, make_ca
from tests.workload.test_agent import two_devices

FIXTURES = Path(__file__).parent / "fixtures"
NODE = "ip-10-0-1-23.ec2.internal"
TOKEN = "test-token-0123456789"


class ApiServer:
    def __init__(self, tmp_path, status=200):
        make_ca(tmp_path, "ca", "kubernetes test CA")
        cert, key = issue(tmp_path, "ca", "apiserver", "127.0.0.1", "IP:127.0.0.1",
                          "serverAuth")
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                outer.requests.append((self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}" or status != 200:
                    self.send_response(status if status != 200 else 401)
                    self.end_headers()
                    return
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                name = {("/api/v1/pods", f"spec.nodeName={NODE}"): "pods.json",
                        ("/api/v1/persistentvolumes", None): "persistentvolumes.json"}.get(
                    (url.path, query.get("fieldSelector", [None])[0]))
                if name is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                body = (FIXTURES / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        account = tmp_path / "serviceaccount"
        account.mkdir()
        (account / "token").write_text(TOKEN + "\n")
        (account / "ca.crt").write_bytes((tmp_path / "ca.crt").read_bytes())
        (account / "namespace").write_text("monitoring\n")
        self.account = str(account)
        self.env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                    "KUBERNETES_SERVICE_PORT": str(self.server.server_address[1])}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(tmp_path):
    server = ApiServer(tmp_path)
    yield server
    server.close()


def test_pods_and_volumes_from_the_api(api):
    client = kubernetes.Client.from_environment(api.account, api.env)
    directory = kubernetes.Directory(client, NODE)
    directory.update()
    assert directory.names(POD_UID, CONTAINER_ID) == ("db", "postgres-0", "postgres")
    assert directory.names("11111111-2222-3333-4444-555555555555", "x") == \
        ("db", "pending-1", "")
    assert directory.claims["vol-0123456789abcdef0"] == kubernetes.ClaimNames(
        "pvc-7d2f1c9a-0b3e-4c5d-8e6f-9a0b1c2d3e4f", "db", "data-postgres-0")
    assert [urlsplit(path).path for path, _auth in api.requests] == [
        "/api/v1/pods", "/api/v1/persistentvolumes"]


def test_api_labels_reach_the_metrics(api, tmp_path):
    rig = two_devices(tmp_path)
    from nitrometer.agent.config import AgentConfig

    config = AgentConfig(serviceaccount_path=api.account, node_name=NODE)
    directory = kubernetes_directory(config, api.env)
    assert directory is not None
    directory.stop()
    directory.update()  # the thread may not have run yet: one list here, deterministic
    rig.state.workloads.kube = directory
    rig.sampler.run(6)
    workload = f"pod/{POD_UID}/{CONTAINER_ID[:12]}"
    assert rig.value(m.WORKLOAD_INFO, workload=workload, namespace="db", pod="postgres-0",
                     container="postgres") == 1
    assert rig.value(m.VOLUME_CLAIM_INFO, device="nvme1n1", serial="vol-0123456789abcdef0",
                     kind="ebs", persistentvolume="pvc-7d2f1c9a-0b3e-4c5d-8e6f-9a0b1c2d3e4f",
                     namespace="db", persistentvolumeclaim="data-postgres-0") == 1
    assert POD_CONTAINER  # the fixture cgroup the workload label comes from
    assert promtool_check(rig.text()) == ""


def test_a_refused_token_is_logged_once_and_names_stay(tmp_path, caplog):
    server = ApiServer(tmp_path, status=403)
    try:
        directory = kubernetes.Directory(
            kubernetes.Client.from_environment(server.account, server.env), NODE)
        directory.update()
        directory.update()
        assert directory.errors == 2 and directory.pods == {}
        warnings = [r for r in caplog.records if "HTTP 403" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        server.close()


def test_outside_a_cluster_nothing_is_used(tmp_path):
    from nitrometer.agent.config import AgentConfig

    config = AgentConfig(serviceaccount_path=str(tmp_path))
    assert kubernetes_directory(config, {}) is None
    assert kubernetes_directory(config, {"KUBERNETES_SERVICE_HOST": "127.0.0.1"}) is None


def test_the_agent_does_not_import_ssl_for_it():
    code = ("import sys; from nitrometer.agent import kubernetes, workloads, main; "
            "print('ssl' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    assert json.loads((FIXTURES / "pods.json").read_text())["kind"] == "PodList"
