"""Test doubles of the GitOps reconcilers: small loops that re-apply "Git" unless paused.

Each models the one behaviour a rollback fights, as the tool documents it, and nothing else:
- Argo CD with automated sync and selfHeal (seconds): re-applies Git's template unless the
  Application's `spec.syncPolicy.automated` is absent or has `enabled: false`; an app-of-apps
  parent (and an ApplicationSet) re-applies its child Application's spec from Git in turn.
- Flux kustomize-controller (an interval): re-applies unless the Kustomization is suspended or
  the object carries `kustomize.toolkit.fluxcd.io/reconcile: disabled` in the cluster.
- Flux helm-controller with drift correction (an interval): re-applies unless `spec.suspend`.

"Git" is the `git` template the test sets (`set_git`). Applying is a PUT of the Deployment with
Git's pod template and everything else as read, so an unchanged template is a no-op write (the
apiserver skips it) and annotations the cluster added stay, as with kubectl apply.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any, cast

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

Obj = dict[str, Any]

ARGO = ("argoproj.io", "v1alpha1", "applications")
KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
HELMRELEASE = ("helm.toolkit.fluxcd.io", "v2", "helmreleases")
FLUX_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"


class Reconciler:
    """Re-applies a Deployment's Git template every `interval` seconds unless `paused()`."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        namespace: str,
        deployment: str,
        git: Obj,
        interval: float,
        paused: Callable[[Obj], bool],
        name: str,
    ) -> None:
        self.apps = kubernetes.client.AppsV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.namespace, self.deployment = namespace, deployment
        self._git = copy.deepcopy(git)
        self.interval = interval
        self._paused = paused
        self.name = name
        self.reverts = 0  # applies that changed the live template
        self.skipped = 0  # ticks skipped because paused
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def set_git(self, template: Obj) -> None:
        with self._lock:
            self._git = copy.deepcopy(template)

    def start(self) -> Reconciler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except ApiException as exc:
                # A 409 (someone wrote meanwhile) is retried next tick, as the tools do; so is
                # an apiserver too busy to answer (429, 5xx) on a loaded machine.
                if exc.status != 409 and exc.status != 429 and exc.status < 500:
                    self.errors.append(f"{exc.status} {exc.reason}")
            except (HTTPError, OSError):
                pass  # the connection failed (reset, timed out): next tick, as the tools do

    def tick(self) -> None:
        live: Obj = self.apps.api_client.sanitize_for_serialization(
            self.apps.read_namespaced_deployment(self.deployment, self.namespace)
        )
        if self._paused(live):
            self.skipped += 1
            return
        with self._lock:
            git = copy.deepcopy(self._git)
        before = _images(live["spec"]["template"])
        live["spec"]["template"] = git
        live.pop("status", None)
        self.apps.replace_namespaced_deployment(self.deployment, self.namespace, live)  # type: ignore[arg-type]
        if _images(git) != before:
            self.reverts += 1

    def owner(self, coordinates: tuple[str, str, str], namespace: str, name: str) -> Obj:
        group, version, plural = coordinates
        return cast(
            Obj, self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        )


def _images(template: Obj) -> list[str]:
    return [c.get("image", "") for c in template.get("spec", {}).get("containers", [])]


def argocd(api: kubernetes.client.ApiClient, *, app: tuple[str, str], **kw: Any) -> Reconciler:
    """Argo CD's self-heal for one Application (namespace, name): seconds."""
    holder: list[Reconciler] = []

    def paused(_: Obj) -> bool:
        application = holder[0].owner(ARGO, *app)
        automated = (application.get("spec", {}).get("syncPolicy") or {}).get("automated")
        if automated is None or automated.get("enabled") is False:
            return True
        return not automated.get("selfHeal", False)

    reconciler = Reconciler(api, paused=paused, name=f"argocd-{app[1]}", **kw)
    holder.append(reconciler)
    return reconciler


def flux_kustomization(
    api: kubernetes.client.ApiClient, *, kustomization: tuple[str, str], **kw: Any
) -> Reconciler:
    """kustomize-controller for one Kustomization (namespace, name): every interval."""
    holder: list[Reconciler] = []

    def paused(live: Obj) -> bool:
        if (live["metadata"].get("annotations") or {}).get(FLUX_RECONCILE) == "disabled":
            return True
        return bool(holder[0].owner(KUSTOMIZATION, *kustomization)["spec"].get("suspend"))

    reconciler = Reconciler(api, paused=paused, name=f"flux-ks-{kustomization[1]}", **kw)
    holder.append(reconciler)
    return reconciler


def flux_helmrelease(
    api: kubernetes.client.ApiClient, *, release: tuple[str, str], **kw: Any
) -> Reconciler:
    """helm-controller with drift correction for one HelmRelease: every interval."""
    holder: list[Reconciler] = []

    def paused(_: Obj) -> bool:
        return bool(holder[0].owner(HELMRELEASE, *release)["spec"].get("suspend"))

    reconciler = Reconciler(api, paused=paused, name=f"flux-hr-{release[1]}", **kw)
    holder.append(reconciler)
    return reconciler


class ParentApp:
    """An app-of-apps parent with auto-sync: re-applies its child Application's Git spec."""

    def __init__(
        self, api: kubernetes.client.ApiClient, *, child: tuple[str, str], git_spec: Obj
    ) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.child, self.git_spec = child, copy.deepcopy(git_spec)
        self.applies = 0

    def tick(self) -> None:
        group, version, plural = ARGO
        namespace, name = self.child
        app = cast(
            Obj, self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        )
        if app.get("spec") != self.git_spec:
            app["spec"] = copy.deepcopy(self.git_spec)
            self.custom.replace_namespaced_custom_object(
                group, version, namespace, plural, name, app
            )
            self.applies += 1
