"""deploy/k8s: each overlay rendered as `kubectl apply -k` would, every object checked offline.

Kubernetes kinds against the API's own schemas (kubernetes-validate, strict: an unknown
field fails), KEDA's against its CRD's required shape; then what the schemas cannot
know: probes on real routes, queues from the task table, a Secret and ConfigMap that
warming loads, Flower's password out of argv, a worker health check that really asks.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support import ROOT, Worker, env_for, write_config
from warming.broker import tasknames as T

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("hpa", "keda", "sentinel")
# The kustomization fields these files use; render() implements exactly these.
_KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator"}
_CLUSTER_SCOPED = {"Namespace"}

# KEDA's CRDs (keda.sh_scaledobjects.yaml, keda.sh_triggerauthentications.yaml): the
# required fields and types of what these manifests use.
_KEDA: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    },
                    "minReplicaCount": {"type": "integer"},
                    "maxReplicaCount": {"type": "integer"},
                    "pollingInterval": {"type": "integer"},
                    "cooldownPeriod": {"type": "integer"},
                    "fallback": {
                        "type": "object",
                        "required": ["failureThreshold", "replicas"],
                        "properties": {
                            "failureThreshold": {"type": "integer"},
                            "replicas": {"type": "integer"},
                        },
                    },
                    "advanced": {"type": "object"},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "authenticationRef": {
                                    "type": "object",
                                    "required": ["name"],
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "spec": {
                "type": "object",
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                    }
                },
            },
        },
    },
}


def render(path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k path` creates (for the fields in _KNOWN)."""
    k = yaml.safe_load((path / "kustomization.yaml").read_text())
    assert set(k) <= _KNOWN, f"{path}: render() does not implement {set(k) - _KNOWN}"
    docs: list[dict[str, Any]] = []
    for res in k.get("resources", []):
        target = (path / res).resolve()
        if target.is_dir():
            docs += render(target)
        else:
            docs += [d for d in yaml.safe_load_all(target.read_text()) if d]
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (path / f).read_text() for f in gen["files"]}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": gen["name"]},
                "data": data,
            }
        )
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if "namespace" in k and doc["kind"] not in _CLUSTER_SCOPED:
            meta["namespace"] = k["namespace"]
        for group in k.get("labels", []):
            meta.setdefault("labels", {}).update(group["pairs"])
    return docs


def _by(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (deploy,) = _by(docs, "Deployment", name)
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_its_schema(overlay: str) -> None:
    docs = render(K8S / overlay)
    version = kubernetes_validate.latest_version()
    for doc in docs:
        if doc["kind"] in _KEDA:
            jsonschema.validate(doc, _KEDA[doc["kind"]])
        else:
            kubernetes_validate.validate(copy.deepcopy(doc), version, strict=True)
    kinds = sorted({d["kind"] for d in docs})
    expected = {"ConfigMap", "Deployment", "Namespace", "PodDisruptionBudget", "Secret", "Service"}
    assert expected <= set(kinds)
    # One autoscaler per overlay: KEDA makes its own HPA, so the two never meet.
    assert ("ScaledObject" in kinds) == (overlay in ("keda", "sentinel"))
    assert ("HorizontalPodAutoscaler" in kinds) == (overlay == "hpa")


def test_a_broken_manifest_is_refused() -> None:
    """The check can fail: an unknown field, a missing KEDA trigger type."""
    docs = render(K8S / "keda")
    bad = copy.deepcopy(_by(docs, "Deployment", "warming-shim")[0])
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)
    so = copy.deepcopy(_by(docs, "ScaledObject")[0])
    del so["spec"]["triggers"][0]["type"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, _KEDA["ScaledObject"])


def test_keda_scales_on_every_prefetch_queue_with_a_cpu_fallback() -> None:
    docs = render(K8S / "keda")
    (so,) = _by(docs, "ScaledObject")
    redis = [t for t in so["spec"]["triggers"] if t["type"] == "redis"]
    assert sorted(t["metadata"]["listName"] for t in redis) == sorted(T.PREFETCH_QUEUES.values())
    assert any(t["type"] == "cpu" for t in so["spec"]["triggers"])
    assert so["spec"]["fallback"]["replicas"] >= so["spec"]["minReplicaCount"]
    assert so["spec"]["scaleTargetRef"]["name"] == "warming-worker"
    (auth,) = _by(docs, "TriggerAuthentication")
    ref = auth["spec"]["secretTargetRef"][0]
    (secret,) = _by(docs, "Secret")
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    (hpa,) = _by(render(K8S / "hpa"), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_probes_ask_real_routes_and_ports(tmp_path: Path) -> None:
    docs = render(K8S / "keda")
    shim = _container(docs, "warming-shim")
    assert shim["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert shim["livenessProbe"]["httpGet"]["path"] == "/healthz"
    from warming.runtime import Runtime
    from warming.shim.app import create_app

    settings = _settings(docs, tmp_path / "warming.toml")
    app = create_app(Runtime(settings))  # builds the routes; nothing is asked of Redis
    routes = {getattr(r, "path", "") for r in app.routes}
    assert {"/readyz", "/healthz", "/metrics", "/batches/{batch_id}"} <= routes
    worker = _container(docs, "warming-worker")
    assert worker["readinessProbe"]["httpGet"]["port"] == "metrics"
    assert worker["ports"][0]["containerPort"] == settings.metrics.port
    assert "inspect ping" in " ".join(worker["livenessProbe"]["exec"]["command"])
    flower = _container(docs, "warming-flower")
    assert flower["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
    assert "basic-auth" not in " ".join(flower["command"])
    env = {e["name"]: e for e in flower["env"]}
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]["key"] == "FLOWER_BASIC_AUTH"
    for name in ("warming-shim", "warming-worker", "warming-flower"):
        c = _container(docs, name)
        assert c["readinessProbe"] and c["livenessProbe"] and c["resources"]["requests"]


def _settings(docs: list[dict[str, Any]], tmp: Path) -> Any:
    """warming's settings from the ConfigMap's file (written to `tmp`) and the Secret."""
    from warming.settings import load_settings

    (cm,) = _by(docs, "ConfigMap")
    (secret,) = _by(docs, "Secret")
    tmp.write_text(cm["data"]["warming.toml"])
    env = {k: v for k, v in secret["stringData"].items() if k.startswith("WARMING_")}
    saved = dict(os.environ)
    try:
        os.environ.update(env, WARMING_CONFIG=str(tmp))
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_configmap_and_secret_are_settings_warming_loads(tmp_path: Path) -> None:
    docs = render(K8S / "keda")
    s = _settings(docs, tmp_path / "warming.toml")
    assert s.broker_url and s.broker_url.startswith("redis://")
    assert s.webhook.secrets[0].get_secret_value().startswith("whsec_")
    assert s.report.token is not None and s.metrics.token is not None
    assert s.log.format == "json" and s.metrics.port == 9808
    text = (K8S / "base" / "warming.toml").read_text()
    assert "CHANGE-ME" not in text and "whsec_" not in text  # secrets live in the Secret


def test_dockerfile_and_compose_check_health() -> None:
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "HEALTHCHECK" in docker and "/healthz" in docker
    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    for name in ("redis", "shim", "worker", "flower"):
        assert services[name]["healthcheck"]["test"], name


@pytest.mark.integration
def test_the_worker_health_check_asks_the_worker_itself(redis_url: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "warming.toml", redis_url, [{"name": "fra", "url": "http://127.0.0.1:9"}]
    )
    worker = Worker(config, tmp_path / "worker.log", concurrency=1)
    try:
        node = _nodename(worker.log())

        def ping(dest: str) -> int:
            cmd = ["-m", "celery", "-A", "warming", "inspect", "ping", "-d", dest, "--timeout", "5"]
            return subprocess.run(
                [sys.executable, *cmd],
                env=env_for(config),
                cwd=ROOT,
                capture_output=True,
                timeout=60,
            ).returncode

        assert ping(node) == 0
        assert ping("celery@no-such-worker") != 0
    finally:
        worker.stop()


def _nodename(log: str) -> str:
    for line in log.splitlines():
        if "@" in line and " ready." in line:
            return line.split("] ")[-1].split(" ready.")[0].strip()
    raise AssertionError(f"no ready line: {log[-500:]}")


def test_the_sentinel_overlay_scales_through_the_sentinels_it_runs() -> None:
    docs = render(K8S / "sentinel")
    (so,) = _by(docs, "ScaledObject")
    queues = [t for t in so["spec"]["triggers"] if t["type"] == "redis-sentinel"]
    assert sorted(t["metadata"]["listName"] for t in queues) == sorted(T.PREFETCH_QUEUES.values())
    (svc,) = _by(docs, "Service", "redis-sentinel")
    port = svc["spec"]["ports"][0]["port"]
    for t in queues:
        assert t["metadata"]["addresses"] == f"redis-sentinel.warming.svc:{port}"
        assert t["metadata"]["sentinelMaster"] == "mymaster"
    (sentinels,) = _by(docs, "StatefulSet", "sentinel")
    assert sentinels["spec"]["replicas"] == 3
    script = sentinels["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "sentinel monitor mymaster redis-0.redis.warming.svc 6379 2" in script
    (data,) = _by(docs, "StatefulSet", "redis")
    assert data["spec"]["replicas"] == 2
    assert (
        "--replicaof redis-0.redis.warming.svc 6379"
        in data["spec"]["template"]["spec"]["containers"][0]["args"][0]
    )
