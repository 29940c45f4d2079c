{{/* Labels on every object: the kustomize base's, with Helm's own bookkeeping. */}}
{{- define "rw.labels" -}}
app.kubernetes.io/name: rollback-webhook
app.kubernetes.io/part-of: rollback-webhook
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rw.selector" -}}
app.kubernetes.io/name: rollback-webhook
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "rw.validate" -}}
{{- if not (has .Values.mode (list "dry-run" "enforce")) -}}
{{- fail (printf "mode: expected dry-run or enforce, got %q" .Values.mode) -}}
{{- end -}}
{{- if and (not .Values.scope.clusterWide) (not .Values.scope.watchNamespaces) -}}
{{- fail "scope.watchNamespaces: list the namespaces to watch when scope.clusterWide is false" -}}
{{- end -}}
{{- if and .Values.gitops.pauseOwners (ne .Values.mode "enforce") -}}
{{- fail "gitops.pauseOwners: needs mode: enforce (a dry run never pauses an owner)" -}}
{{- end -}}
{{- if and (eq .Values.audit.backend "postgresql") (not .Values.audit.postgresql.dsnSecret.name) -}}
{{- fail "audit.postgresql.dsnSecret.name: the Secret holding the DSN (audit.backend: postgresql)" -}}
{{- end -}}
{{- if not (has .Values.audit.backend (list "sqlite" "postgresql")) -}}
{{- fail (printf "audit.backend: expected sqlite or postgresql, got %q" .Values.audit.backend) -}}
{{- end -}}
{{- end -}}

{{/* config.yaml: what deploy/overlays/<mode>/config.yaml says, for these values. */}}
{{- define "rw.config" -}}
{{- $audit := dict "path" "/var/lib/rollback-webhook/audit.sqlite" -}}
{{- if eq .Values.audit.backend "postgresql" -}}
{{- $audit = dict "backend" "postgresql" "path" "/var/lib/rollback-webhook/audit.sqlite" "dsn_file" "/etc/rollback-webhook/audit/dsn" -}}
{{- end -}}
{{- $config := dict
  "dry_run" (eq .Values.mode "dry-run")
  "require_opt_in" true
  "auth" (dict
    "receiver" (dict "bearer_token_file" "/etc/rollback-webhook/receiver/token")
    "oncall_tokens_file" "/etc/rollback-webhook/oncall/tokens")
  "audit" $audit
  "kubernetes" (dict "kubeconfig" nil)
  "prometheus" (dict "url" .Values.prometheus.url)
  "tracker" (dict "lease_namespace" .Release.Namespace "lease_name" "rollback-webhook-leader")
  "circuit_ledger" (dict "mode" "auto" "namespace" .Release.Namespace "name" "rollback-webhook-rollbacks")
-}}
{{- if not .Values.scope.clusterWide -}}
{{- $_ := set $config "namespaces" (dict "allow" .Values.scope.watchNamespaces) -}}
{{- end -}}
{{- if .Values.gitops.pauseOwners -}}
{{- $_ := set $config "gitops" (dict
  "argocd" "pause" "flux_kustomization" "pause" "flux_helmrelease" "pause" "helm" "refuse"
  "argocd_namespace" .Values.gitops.argocdNamespace "allow_managed_applications" false
  "argocd_destinations" (list "https://kubernetes.default.svc" "in-cluster")
  "helmrelease_latest_release" false) -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $config (deepCopy .Values.config)) -}}
{{- end -}}

{{/* The rules of base/rbac-cluster.yaml: also each namespaced Role's. */}}
{{- define "rw.rules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: {{ if eq .Values.mode "enforce" }}["get", "list", "update"]{{ else }}["get", "list"]{{ end }}
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}
