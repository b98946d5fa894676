# Shared by the image scripts (scripts/build-images, scripts/build-deploy-images): install
# missing Debian packages, wait for the Docker engine, and build an image only when the sha256
# of its inputs differs from its org.pipelines.source-sha256 label. Source it after setting ROOT
# and NAME (the script's name for messages).
# shellcheck shell=bash

LABEL_KEY=org.pipelines.source-sha256

die() { echo "$NAME: $*" >&2; exit 1; }

# --- packages -------------------------------------------------------------
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); install them as root"
    local log
    log=$(mktemp)
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -q -y --no-install-recommends)
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}" >"$log" 2>&1; then
        # the package lists may be missing or stale: refresh once and retry
        if ! { apt-get -o DPkg::Lock::Timeout=600 -q update &&
               DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "${missing[@]}"; } >>"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            die "apt-get install ${missing[*]} failed"
        fi
    fi
    rm -f "$log"
}

# --- docker -----------------------------------------------------------------
wait_for_docker() {
    command -v docker >/dev/null || die "docker CLI not found (run scripts/services start)"
    local waited=0 limit=${DOCKER_WAIT_SECONDS:-60}
    until docker info >/dev/null 2>&1; do
        if [ "$waited" -ge "$limit" ]; then
            docker info >/dev/null || true   # show docker's own error
            die "docker daemon not reachable after ${limit}s (run scripts/services start)"
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

current_label() {
    docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# hash_inputs FILE... : sha256 over names and contents, plus extra text on stdin
hash_inputs() {
    {
        local f
        for f in "$@"; do
            printf '%s\n' "${f#"$ROOT"/}"
            sha256sum <"$f"
        done
        cat
    } | sha256sum | cut -d' ' -f1
}

# build_image TAG HASH CONTEXT [DOCKER BUILD OPTIONS...]
build_image() {
    local tag=$1 hash=$2 ctx=$3 out id
    shift 3
    if ! out=$(DOCKER_BUILDKIT=0 docker build -q --pull=false --label "$LABEL_KEY=$hash" \
                  "$@" -t "$tag" "$ctx" 2>&1); then
        echo "$out" >&2
        die "docker build of $tag failed"
    fi
    id=$(printf '%s\n' "$out" | tail -n1)
    echo "built $tag ${id:0:19}"
}

