"""Names from the Kubernetes API for what cgroup paths and device serials identify: the
namespace, pod and container of a pod UID and container id, and the PersistentVolume and
claim behind an EBS volume id.

In a cluster, with the pod's service account (token and CA under /var/run/secrets/
kubernetes.io/serviceaccount, the API at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT),
read only: the pods on this node and the PersistentVolumes. Responses follow the API
reference's PodList and PersistentVolumeList (core/v1). HTTPS with the standard library,
imported only here, so an agent outside Kubernetes never loads ssl for it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

log = logging.getLogger("nitrometer.kubernetes")

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TIMEOUT = 10.0
MAX_BODY = 64 << 20  # a PodList of a full node is a few MB
REFRESH = 60.0  # seconds between lists: pods come and go at that pace, names never change


@dataclass(frozen=True)
class PodNames:
    namespace: str
    pod: str
    containers: dict = field(default_factory=dict)  # container id -> container name


@dataclass(frozen=True)
class ClaimNames:
    persistentvolume: str
    namespace: str
    persistentvolumeclaim: str


class ApiError(Exception):
    pass


def in_cluster(env=os.environ, service_account: str = SERVICE_ACCOUNT) -> bool:
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and os.path.isfile(
        os.path.join(service_account, "token"))


class Client:
    """GETs JSON from the API server with the service account's token, verified by its CA."""

    def __init__(self, host: str, port: int, token_file: str, ca_file: str):
        self.host, self.port = host, port
        self.token_file = token_file
        import ssl  # only in a cluster

        self.context = ssl.create_default_context(cafile=ca_file)

    @classmethod
    def from_environment(cls, service_account: str = SERVICE_ACCOUNT, env=os.environ) -> Client:
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not port.isdigit():
            raise ApiError("KUBERNETES_SERVICE_HOST/PORT not set: not in a cluster")
        return cls(host, int(port), os.path.join(service_account, "token"),
                   os.path.join(service_account, "ca.crt"))

    def get(self, path: str) -> dict:
        import http.client

        with open(self.token_file) as f:  # re-read: bound tokens are rotated
            token = f.read().strip()
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=TIMEOUT)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}",
                                               "Accept": "application/json"})
            response = conn.getresponse()
            body = response.read(MAX_BODY + 1)
        except OSError as exc:
            raise ApiError(f"GET {path}: {exc}") from None
        finally:
            conn.close()
        if response.status != 200:
            raise ApiError(f"GET {path}: HTTP {response.status} {response.reason}")
        if len(body) > MAX_BODY:
            raise ApiError(f"GET {path}: answer larger than {MAX_BODY >> 20} MiB")
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(f"GET {path}: not JSON") from None


def _container_id(status_id: str) -> str:
    """containerStatuses[].containerID is <runtime>://<id>."""
    return status_id.split("://", 1)[-1]


def pods_by_uid(pod_list: dict) -> dict[str, PodNames]:
    out = {}
    for pod in pod_list.get("items") or []:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            continue
        status = pod.get("status") or {}
        containers = {}
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for c in status.get(key) or []:
                if c.get("containerID") and c.get("name"):
                    containers[_container_id(c["containerID"])] = c["name"]
        out[uid] = PodNames(meta.get("namespace", ""), meta.get("name", ""), containers)
    return out


def claims_by_volume(pv_list: dict) -> dict[str, ClaimNames]:
    """EBS volume id (spec.csi.volumeHandle, or awsElasticBlockStore.volumeID in-tree) ->
    the PersistentVolume and the claim bound to it."""
    out = {}
    for pv in pv_list.get("items") or []:
        spec = pv.get("spec") or {}
        handle = (spec.get("csi") or {}).get("volumeHandle") or \
            (spec.get("awsElasticBlockStore") or {}).get("volumeID", "").rsplit("/", 1)[-1]
        if not handle:
            continue
        claim = spec.get("claimRef") or {}
        out[handle] = ClaimNames((pv.get("metadata") or {}).get("name", ""),
                                 claim.get("namespace", ""), claim.get("name", ""))
    return out


class Directory:
    """The names, refreshed every REFRESH seconds on its own thread; lookups never wait."""

    def __init__(self, client: Client, node: str | None, refresh: float = REFRESH):
        self.client = client
        self.node = node
        self.refresh = refresh
        self.pods: dict[str, PodNames] = {}
        self.claims: dict[str, ClaimNames] = {}
        self.errors = 0
        self._failing = False
        self._stop = threading.Event()

    def update(self) -> None:
        try:
            path = "/api/v1/pods"
            if self.node:
                path += "?fieldSelector=" + quote(f"spec.nodeName={self.node}", safe="=")
            pods = pods_by_uid(self.client.get(path))
            claims = claims_by_volume(self.client.get("/api/v1/persistentvolumes"))
        except (ApiError, OSError) as exc:
            self.errors += 1
            if not self._failing:  # once when it starts failing, once when it is back
                log.warning("kubernetes API: %s; names stay as last read", exc)
                self._failing = True
            return
        if self._failing:
            log.warning("kubernetes API: answering again")
            self._failing = False
        self.pods, self.claims = pods, claims  # each a new dict: readers see one or the other

    def start(self) -> threading.Thread:
        def loop():
            while not self._stop.is_set():
                self.update()
                self._stop.wait(self.refresh)

        thread = threading.Thread(target=loop, name="nitrometer-kubernetes", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def names(self, pod_uid: str, container_id: str) -> tuple[str, str, str] | None:
        pod = self.pods.get(pod_uid)
        if pod is None:
            return None
        return pod.namespace, pod.pod, pod.containers.get(container_id, "")
