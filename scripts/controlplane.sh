#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for the test bench:
# etcd (embedded, lab/go/controlplane/etcd), kube-apiserver and kube-controller-manager
# (k8s.io/kubernetes v1.35.4, built from Go modules by scripts/build-go.sh on first use) and the
# kubelet stand-in (lab/kubelet.py). Writes an admin kubeconfig, prints
#   controlplane: ready kubeconfig=FILE
# and runs until SIGTERM/SIGINT, then stops everything it started and exits 0.
#
#   scripts/controlplane.sh --kubeconfig-out FILE [--workdir DIR] [--backoff-scale 0.1]
#
# Authentication: static bearer tokens (admin in system:masters, the controller-manager and the
# kubelet stand-in) over https with a CA generated at start; ServiceAccount tokens signed by a
# key generated at start (TokenRequest and `kubectl create token` work). Authorization: RBAC.
# Admission: the apiserver's default chain.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${ROLLBACK_WEBHOOK_BIN:-$HOME/.cache/rollback-webhook/bin}"
PYTHON="${PYTHON:-python3}"
KUBECONFIG_OUT=""
WORKDIR=""
BACKOFF_SCALE="${ROLLBACK_WEBHOOK_KUBELET_BACKOFF_SCALE:-1}"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig-out) KUBECONFIG_OUT="$2"; shift 2 ;;
    --workdir) WORKDIR="$2"; shift 2 ;;
    --backoff-scale) BACKOFF_SCALE="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "controlplane: unknown argument $1" >&2; usage 2 ;;
  esac
done
[ -n "$KUBECONFIG_OUT" ] || { echo "controlplane: --kubeconfig-out FILE is required" >&2; exit 2; }
case "$KUBECONFIG_OUT" in /*) ;; *) KUBECONFIG_OUT="$PWD/$KUBECONFIG_OUT" ;; esac

# -- build (cached: scripts/build-go.sh skips binaries whose stamp matches) ---------------------
if command -v go >/dev/null 2>&1; then
  bash "$ROOT/scripts/build-go.sh" controlplane >&2
else
  echo "controlplane: go not on PATH; using the binaries already in $BIN" >&2
fi
for b in etcd kube-apiserver kube-controller-manager; do
  [ -x "$BIN/$b" ] || { echo "controlplane: $BIN/$b missing after the build" >&2; exit 1; }
done

# -- work directory, ports, keys --------------------------------------------------------------
OWN_WORKDIR=0
if [ -z "$WORKDIR" ]; then WORKDIR="$(mktemp -d -t controlplane.XXXXXX)"; OWN_WORKDIR=1; fi
mkdir -p "$WORKDIR/pki" "$WORKDIR/etcd" "$WORKDIR/logs"
read -r ETCD_PORT PEER_PORT API_PORT < <("$PYTHON" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
)
PKI="$WORKDIR/pki"
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=controlplane-ca" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n' \
  > "$PKI/apiserver.ext"
openssl_quiet x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
  -CAcreateserial -days 2 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt"
openssl_quiet genrsa -out "$PKI/sa.key" 2048
openssl_quiet rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
token() { openssl rand -hex 16; }
ADMIN_TOKEN="$(token)"; KCM_TOKEN="$(token)"; KUBELET_TOKEN="$(token)"
{
  echo "$ADMIN_TOKEN,admin,admin,system:masters"
  echo "$KCM_TOKEN,system:kube-controller-manager,kcm"
  echo "$KUBELET_TOKEN,system:node:standin-node,kubelet,\"system:nodes,system:masters\""
} > "$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

write_kubeconfig() {  # FILE TOKEN
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: controlplane
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: controlplane
  user:
    token: $2
contexts:
- name: controlplane
  context: {cluster: controlplane, user: controlplane, namespace: default}
current-context: controlplane
EOF
  chmod 600 "$1"
}
write_kubeconfig "$WORKDIR/kcm.kubeconfig" "$KCM_TOKEN"
write_kubeconfig "$WORKDIR/kubelet.kubeconfig" "$KUBELET_TOKEN"

# -- processes ----------------------------------------------------------------------------------
PIDS=()
COMPONENTS=(etcd kube-apiserver kube-controller-manager kubelet)  # in start order, as PIDS
stop_all() {
  # Newest first and one at a time: the apiserver shuts down cleanly only while etcd still runs.
  trap - TERM INT
  local i pid waited
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    pid="${PIDS[$i]}"
    kill -TERM "$pid" 2>/dev/null || continue
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 150 ]; do sleep 0.1; waited=$((waited + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$OWN_WORKDIR" = 1 ]; then rm -rf "$WORKDIR"; fi
}
on_signal() { stop_all; echo "controlplane: stopped" >&2; exit 0; }
trap on_signal TERM INT
fail() {
  echo "controlplane: $1 (logs in $WORKDIR/logs)" >&2
  tail -n 20 "$WORKDIR/logs/$2.log" >&2 || true
  OWN_WORKDIR=0 stop_all
  exit 1
}
wait_for() {  # NAME PID TIMEOUT COMMAND...
  local name="$1" pid="$2" deadline=$((SECONDS + $3)); shift 3
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$name exited" "$name"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name not ready in time" "$name"
    sleep 0.2
  done
}
api_get() {
  curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "https://127.0.0.1:$API_PORT$1"
}

"$BIN/etcd" --data-dir "$WORKDIR/etcd" --listen-client-url "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-url "http://127.0.0.1:$PEER_PORT" > "$WORKDIR/logs/etcd.log" 2>&1 &
PIDS+=($!)
wait_for etcd "${PIDS[-1]}" 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

"$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 \
  --cert-dir="$WORKDIR/apiserver" --profiling=false --v=1 \
  > "$WORKDIR/logs/kube-apiserver.log" 2>&1 &
PIDS+=($!)
wait_for kube-apiserver "${PIDS[-1]}" 180 api_get /readyz

"$BIN/kube-controller-manager" \
  --kubeconfig="$WORKDIR/kcm.kubeconfig" --use-service-account-credentials=true \
  --controllers=deployment-controller,replicaset-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --leader-elect=false --secure-port=0 --profiling=false --v=1 \
  > "$WORKDIR/logs/kube-controller-manager.log" 2>&1 &
PIDS+=($!)
# Ready when the serviceaccount controller made the default ServiceAccount (pods need it).
wait_for kube-controller-manager "${PIDS[-1]}" 120 api_get /api/v1/namespaces/default/serviceaccounts/default

(cd "$ROOT" && exec "$PYTHON" -m lab.kubelet --kubeconfig "$WORKDIR/kubelet.kubeconfig" \
  --backoff-scale "$BACKOFF_SCALE") > "$WORKDIR/logs/kubelet.log" 2>&1 &
PIDS+=($!)
wait_for kubelet "${PIDS[-1]}" 60 api_get /api/v1/nodes/standin-node

printf 'etcd %s\nkube-apiserver %s\nkube-controller-manager %s\nkubelet %s\n' "${PIDS[@]}" \
  > "$WORKDIR/pids"
mkdir -p "$(dirname "$KUBECONFIG_OUT")"
write_kubeconfig "$KUBECONFIG_OUT" "$ADMIN_TOKEN"
cp "$PKI/ca.crt" "$WORKDIR/ca.crt"
echo "controlplane: ready kubeconfig=$KUBECONFIG_OUT workdir=$WORKDIR server=https://127.0.0.1:$API_PORT"

# Run until a signal, or until a component dies (then fail loudly).
while true; do
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail "${COMPONENTS[$i]} exited" "${COMPONENTS[$i]}"
  done
  sleep 1 &
  wait $! || true
done
