"""What botc's rendered manifests must hold beyond the Kubernetes schemas (which
kubernetes-validate checks): every role is there with its probes, sizes, non-root user and
disruption budget, and the gateway and workers scale on CPU above 60%.

Usage: python check.py RENDERED.yaml...  (scripts/validate-deploy runs it on each overlay)
"""

import sys

import yaml

ROLES = ["gateway", "worker", "dispatcher", "scheduler"]
SCALED = ["gateway", "worker"]


def check(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    deployments = by_kind.get("Deployment", {})
    for role in ROLES:
        name = f"botc-{role}"
        dep = deployments.get(name)
        need(dep is not None, f"no Deployment {name}")
        if dep is None:
            continue
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        need(c["args"][0] == role, f"{name} runs `{c['args'][0]}`, not `{role}`")
        need(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{name}: liveness on /healthz")
        need(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{name}: readiness on /readyz")
        res = c.get("resources", {})
        for part in ["requests", "limits"]:
            for what in ["cpu", "memory"]:
                need(what in res.get(part, {}), f"{name}: resources.{part}.{what}")
        need(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
        need(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{name}: read-only root")
        # A stopping role finishes its batch and ships history for up to 5 s.
        need(pod.get("terminationGracePeriodSeconds", 30) >= 15, f"{name}: grace period under 15 s")
        need(name in by_kind.get("PodDisruptionBudget", {}), f"{name}: no PodDisruptionBudget")
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for role in SCALED:
        name = f"botc-{role}"
        hpa = hpas.get(name)
        need(hpa is not None, f"no HorizontalPodAutoscaler {name}")
        if hpa is None:
            continue
        need(hpa["apiVersion"] == "autoscaling/v2", f"{name}: autoscaling/v2")
        need(hpa["spec"]["scaleTargetRef"]["name"] == name, f"{name}: scales {hpa['spec']['scaleTargetRef']['name']}")
        cpu = [
            m["resource"]["target"]
            for m in hpa["spec"].get("metrics", [])
            if m["type"] == "Resource" and m["resource"]["name"] == "cpu"
        ]
        need(cpu == [{"type": "Utilization", "averageUtilization": 60}], f"{name}: CPU target is {cpu}, not 60%")
    need("botc-gateway" in by_kind.get("Service", {}), "no Service botc-gateway")
    need("botc-gateway" in by_kind.get("Ingress", {}), "no Ingress botc-gateway")
    return problems


failed = False
for path in sys.argv[1:]:
    for p in check(path):
        print(f"FAIL {path}: {p}")
        failed = True
sys.exit(1 if failed else 0)
