# Sourced by tools/test.sh and tools/demo.sh: creates the virtualenv $VENV (default .venv) if needed, with
# Debian's python3-venv installed first when that is what is missing.
VENV=${DTD_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV" && python3 -m venv "$VENV"
    else
      echo "error: 'python3 -m venv' failed; install python3-venv" >&2
      exit 1
    fi
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
