"""deploy/kubernetes: every manifest valid against the Kubernetes schemas of the versions
EKS supports, and consistent with the agent (its flags, the least privileges it needs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from nitrometer.agent.config import build_config
from nitrometer.agent.main import configure

DEPLOY = Path(__file__).parents[2] / "deploy" / "kubernetes"
# Kubernetes versions in EKS standard support (https://docs.aws.amazon.com/eks/latest/
# userguide/kubernetes-versions.html), each with a strict schema in kubernetes-validate.
EKS_VERSIONS = ("1.30.0", "1.31.0", "1.32.0", "1.33.0")
# A custom resource: no core schema exists for it, so it is checked structurally below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def documents() -> list[dict]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def by_kind(kind: str) -> dict:
    (doc,) = [d for d in documents() if d["kind"] == kind]
    return doc


@pytest.mark.parametrize("version", EKS_VERSIONS)
def test_manifests_validate_against_the_schemas(version):
    checked = 0
    for doc in documents():
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked == 5  # DaemonSet, ServiceAccount, ClusterRole and its binding, Service


def test_the_validation_catches_a_wrong_field():
    ds = by_kind("DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilites"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, EKS_VERSIONS[-1], strict=True)


def test_the_service_monitor_selects_the_service_port():
    monitor, service = by_kind("ServiceMonitor"), by_kind("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [
        service["metadata"]["namespace"]]
    ports = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "relabelings", "scheme",
                             "tlsConfig", "scrapeTimeout"}


def test_the_role_reads_pods_and_volumes_only():
    role = by_kind("ClusterRole")
    rules = {tuple(r["resources"]): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {("pods",): ["get", "list", "watch"],
                     ("persistentvolumes",): ["get", "list"]}
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    binding = by_kind("ClusterRoleBinding")
    account = by_kind("ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]


def test_the_daemonset_holds_only_what_the_agent_needs():
    ds = by_kind("DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is False and pod.get("hostNetwork") is False
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"],
                                        "add": ["SYS_ADMIN", "SETUID", "SETGID", "SETPCAP"]}
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert all(m["readOnly"] for m in mounts.values())
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    assert host == {"dev": "/dev", "sys": "/sys", "cgroup": "/sys/fs/cgroup"}
    # The agent accepts its arguments, and they point at the host mounts.
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(container["args"][1:])
    config = build_config(args)
    assert config.dev_path == mounts["dev"]["mountPath"]
    assert config.sysfs_path == mounts["sys"]["mountPath"]
    assert config.cgroupfs_path == mounts["cgroup"]["mountPath"]
    assert config.enabled("workload") and config.enabled("kubernetes")
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"NODE_NAME": "spec.nodeName"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": config.listen_port}
