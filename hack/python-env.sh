#!/usr/bin/env bash
# Creates the student runtime's virtualenv in .venv (repo root) from the pinned requirements files.
# Cached: a stamp file inside .venv holds the hash of the requirements files, so a second run is instant.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PYTHON_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
reqs=("$root/student/requirements.txt" "$root/student/requirements-dev.txt")
stamp="$venv/.requirements.sha256"

want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
  exit 0
fi

echo "python-env: creating $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $(printf -- '-r %s ' "${reqs[@]}")
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root/student"
echo "$want" >"$stamp"
