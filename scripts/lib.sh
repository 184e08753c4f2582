# Shared by scripts/test and scripts/demo: which Python to use, and its virtual environments.
# (Sourced, not run.)

# The Python Azure runs the app on (infra/app/function.bicep; tests/deploy/test_rules.py
# checks that both say the same). The app and its tests also run on the others.
DEPLOYED_PYTHON="3.13"
SUPPORTED_PYTHONS="3.13 3.12 3.11"

# python_version PATH: "3.13" for a working interpreter, nothing otherwise.
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

# find_python VERSION: the path of a working Python VERSION (on PATH, or installed by pyenv).
find_python() {
  local version="$1" candidate found pyenv_version
  for candidate in "python$version" python3 python; do
    found=$(command -v "$candidate" 2>/dev/null) || continue
    if [ "$(python_version "$found")" = "$version" ]; then
      echo "$found"
      return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    pyenv_version=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}\.[0-9]+$" \
      | sort -V | tail -n 1)
    found="$(pyenv root)/versions/$pyenv_version/bin/python$version"
    if [ -n "$pyenv_version" ] && [ "$(python_version "$found")" = "$version" ]; then
      echo "$found"
      return 0
    fi
  fi
  return 1
}

# ensure_venv DIR VERSION: DIR is a virtual environment of Python VERSION; one made by
# another Python is removed and made again (pip would fail on it at every run otherwise).
ensure_venv() {
  local dir="$1" version="$2" have python
  if [ -e "$dir" ] || [ -L "$dir" ]; then
    have=$(python_version "$dir/bin/python")
    [ "$have" = "$version" ] && return 0
    echo "==> $dir was made by Python ${have:-that no longer runs}, not $version: rebuilding it"
    rm -rf "$dir"  # a symlinked environment: only the link goes
  fi
  if ! python=$(find_python "$version"); then
    echo "Python $version is needed (for $dir) and was not found: install it (python.org, your package manager, or \`pyenv install $version\`) and run this again." >&2
    return 1
  fi
  echo "==> creating $dir with Python $version ($python)"
  "$python" -m venv "$dir"
}
