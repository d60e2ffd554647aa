# Sourced by scripts/test and scripts/demo: make .venv and install ccm-intake[dev] into it,
# again only when pyproject.toml (or the Python) changed since the last good install.
# Needs: ROOT, die, quietly, LOGDIR.

python_ok() {
    python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

ensure_venv() {
    VENV=$ROOT/.venv
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python_ok; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                # Debian's python3 has no ensurepip without python3-venv.
                quietly "$LOGDIR/apt-venv.log" env DEBIAN_FRONTEND=noninteractive \
                    sh -c 'apt-get update && apt-get install -y --no-install-recommends python3-venv' \
                    || die "apt-get install python3-venv failed"
            fi
            python_ok || die "python3 (3.11 or newer) with venv is needed"
        fi
        python3 -m venv "$VENV" || die "python3 -m venv .venv failed"
    fi
    PY=$VENV/bin/python
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$VENV has Python $("$PY" -V 2>&1); ccm-intake needs 3.11 or newer (remove .venv)"
    local stamp_file=$VENV/.ccm-install-stamp stamp
    stamp=$( { sha256sum "$ROOT/pyproject.toml"; "$PY" -VV; } | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]; then
        echo "installing ccm-intake[dev] into .venv (editable)"
        quietly "$LOGDIR/pip.log" "$PY" -m pip install --disable-pip-version-check -e "$ROOT[dev]" \
            || die "pip install -e '.[dev]' failed"
        echo "$stamp" > "$stamp_file"
    else
        echo ".venv up to date (pyproject.toml unchanged)"
    fi
}
