#!/usr/bin/env bash
# Builds the Go programs of the test bench (lab/go/<name>/) into one bin directory.
#
#   scripts/build-go.sh              every lab/go/<name> that has a `targets` file
#   scripts/build-go.sh NAME...      only those modules (e.g. prometheus3 alertmanager)
#
# Each module's `targets` file has one line per binary: `OUTPUT GO_PACKAGE [TAGS]`
# (TAGS: optional comma-separated build tags; `#` starts a comment). An optional file `ldflags`
# beside it adds linker flags to every binary of the module (e.g. -X version stamps). Each binary is built
# from inside its module directory, pinned by the committed go.mod and go.sum, into
#   BIN=${ROLLBACK_WEBHOOK_BIN:-$HOME/.cache/rollback-webhook/bin}
# A binary is skipped when its stamp (sha256 of the module's go.mod, go.sum, *.go and
# targets, the target line and `go version`) matches the one recorded when it was built.
# Safe to run concurrently: each module is built under its own flock, the stamp is checked
# again once the lock is held, and a binary is replaced by an atomic rename, never
# overwritten in place. Builds run under `nice` (BUILD_GO_NICE, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

BIN="${ROLLBACK_WEBHOOK_BIN:-$HOME/.cache/rollback-webhook/bin}"
NICE="${BUILD_GO_NICE:-10}"

if ! command -v go >/dev/null 2>&1; then
  echo "build-go: go not found on PATH; nothing built" >&2
  exit 1
fi
# Never download another toolchain behind the user's back: a module needing a newer Go fails.
export GOTOOLCHAIN=local
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
GO_VERSION="$(go version)"

mkdir -p "$BIN" "$BIN/.stamps" "$BIN/.locks"

if (($#)); then
  modules=("$@")
else
  modules=()
  for targets in lab/go/*/targets; do
    [[ -f "$targets" ]] || continue
    modules+=("$(basename "$(dirname "$targets")")")
  done
fi

module_digest() {
  # The inputs that decide what the module builds: its requirements, its own Go files, its
  # targets. Sorted paths so the digest does not depend on directory order.
  local dir="$1"
  (
    cd "$dir"
    {
      printf '%s\n' go.mod go.sum targets placeholders ldflags
      find . -name '*.go' -type f | sed 's|^\./||'
    } | LC_ALL=C sort -u | while read -r f; do
      if [[ -f "$f" ]]; then sha256sum "$f"; fi
    done
  ) | sha256sum | cut -d' ' -f1
}

placeholder_modfile() {
  # For a module whose `placeholders` file names directories a dependency embeds but does not
  # publish: copy that dependency (pinned by go.sum) into a work dir, create the directories
  # with a placeholder page, and write a go.mod that replaces it by the copy. Prints the go.mod.
  local name="$1" dir="$2" module subdir src version copy work="$BIN/.work/$1"
  rm -rf "$work" && mkdir -p "$work"
  cp "$dir/go.mod" "$dir/go.sum" "$work/"
  while read -r module subdir; do
    [[ -n "${module:-}" && "$module" != \#* ]] || continue
    read -r src version < <(cd "$dir" && go mod download -json "$module" \
      | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["Dir"], m["Version"])') || return 1
    copy="$work/$(basename "$module")@$version"
    if [[ ! -d "$copy" ]]; then
      cp -r "$src" "$copy" && chmod -R u+w "$copy"
      printf 'replace %s => %s\n' "$module" "$copy" >>"$work/go.mod"
    fi
    mkdir -p "$copy/$subdir"
    printf '<!doctype html><title>not built</title><p>Web UI not built in this test-bench binary.\n' \
      >"$copy/$subdir/index.html"
  done <"$dir/placeholders"
  echo "$work/go.mod"
}

build_module() {
  local name="$1" dir="$ROOT/lab/go/$1"
  if [[ ! -f "$dir/targets" ]]; then
    echo "build-go: $name: no $dir/targets" >&2
    return 1
  fi
  local digest
  digest="$(module_digest "$dir")"
  local extra_ldflags=""
  if [[ -f "$dir/ldflags" ]]; then
    extra_ldflags="$(grep -v '^#' "$dir/ldflags" | tr '\n' ' ')"
  fi
  (
    flock 9
    local line output pkg tags stamp stampfile start took tmp modfile=""
    while IFS= read -r line || [[ -n "$line" ]]; do
      line="${line%%#*}"
      read -r output pkg tags <<<"$line" || true
      [[ -n "${output:-}" ]] || continue
      if [[ -z "${pkg:-}" ]]; then
        echo "build-go: $name/targets: '$line' has no package" >&2
        return 1
      fi
      stamp="$(printf '%s\n%s\n%s %s %s\n' "$digest" "$GO_VERSION" "$output" "$pkg" "${tags:-}" | sha256sum | cut -d' ' -f1)"
      stampfile="$BIN/.stamps/$output"
      if [[ -x "$BIN/$output" && -f "$stampfile" && "$(cat "$stampfile")" == "$stamp" ]]; then
        echo "build-go: $output up to date ($name)"
        continue
      fi
      start=$SECONDS
      if [[ -f "$dir/placeholders" && -z "$modfile" ]]; then
        modfile="$(placeholder_modfile "$name" "$dir")" || return 1
      fi
      tmp="$BIN/.$output.tmp.$$"
      echo "build-go: building $output from $name ($pkg${tags:+, tags $tags})"
      if ! (cd "$dir" && nice -n "$NICE" go build -trimpath -ldflags="-s -w $extra_ldflags" \
            ${tags:+-tags "$tags"} ${modfile:+-modfile "$modfile"} -o "$tmp" "$pkg"); then
        rm -f "$tmp"
        echo "build-go: FAILED $output ($name)" >&2
        return 1
      fi
      mv -f "$tmp" "$BIN/$output"
      printf '%s\n' "$stamp" >"$stampfile"
      took=$((SECONDS - start))
      echo "build-go: built $BIN/$output in ${took}s"
    done <"$dir/targets"
  ) 9>"$BIN/.locks/$name.lock"
}

failed=()
total_start=$SECONDS
for name in "${modules[@]}"; do
  build_module "$name" || failed+=("$name")
done
echo "build-go: done in $((SECONDS - total_start))s (${#modules[@]} modules, bin $BIN)"
if ((${#failed[@]})); then
  echo "build-go: failed: ${failed[*]}" >&2
  exit 1
fi
