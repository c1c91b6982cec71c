#!/usr/bin/env bash
# Create or reuse .venv at the repository root with everything Vigil needs.
# Idempotent: a stamp records what was installed; a second run with the same inputs does nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"
stamp="$venv/.vigil-bootstrap"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)

# Headless Chromium (Debian's package) loads `vigil report` in its test. Checked on every
# run, before the stamp: it lives outside .venv, so a reused .venv says nothing about it.
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    echo "bootstrap: installing chromium (apt-get)" >&2
    apt-get install -y -q --no-install-recommends chromium >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
      || echo "bootstrap: could not install chromium; tests/test_report.py will fail saying so" >&2
  else
    echo "bootstrap: chromium is missing (apt-get install chromium); tests/test_report.py needs it" >&2
  fi
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

python=${VIGIL_PYTHON:-}
if [[ -z "$python" ]]; then
  for candidate in python3.11 "$HOME/.pyenv/versions/3.11.7/bin/python3.11" python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python=$candidate; break
    fi
  done
fi
[[ -n "$python" ]] || { echo "bootstrap: Python 3.11 is required (set VIGIL_PYTHON)" >&2; exit 1; }

echo "bootstrap: installing into $venv (first run takes several minutes)" >&2
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip wheel
# torch first: the CPU build of 2.13.0 is on local disk; anything newer drags in GBs of CUDA.
"${pip[@]}" install -q "torch==2.13.0"

# llama-cpp-python compiles from source (about 8 minutes on 2 cores). Build the wheel once
# per machine into a cache outside the checkout; every later venv (CI's fresh clone too) reuses it.
# Portable CPU code (GGML_NATIVE=OFF: SSE4.2/AVX/AVX2/BMI2/FMA/F16C, no AVX-512 or AMX): a
# native build uses every instruction the build machine advertises, and VMs here advertise
# AMX that then traps (SIGILL in libggml-cpu on the first chat completion, seen 2026-11-26).
# The cache folder is named after the flags, so a wheel built otherwise is never picked up.
wheels=${VIGIL_WHEEL_CACHE:-$HOME/.cache/vigil/wheels}/llama-portable-avx2
mkdir -p "$wheels"
llama_pin=$(grep -o 'llama-cpp-python\[server\]==[0-9.]*' pyproject.toml | sed 's/.*==//')
if ! ls "$wheels"/llama_cpp_python-"$llama_pin"-*.whl >/dev/null 2>&1; then
  echo "bootstrap: building llama-cpp-python $llama_pin once (about 8 minutes)" >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "${pip[@]}" wheel -q --no-deps --no-cache-dir -w "$wheels" \
    "llama-cpp-python==$llama_pin"
fi
# The cached wheel replaces whatever build of the same version an older .venv holds.
"${pip[@]}" install -q --no-deps --force-reinstall "$wheels"/llama_cpp_python-"$llama_pin"-*.whl

# Everything else in ONE resolver pass, so faust-streaming's click<8.4 and the rest agree.
"${pip[@]}" install -q --find-links "$wheels" -e ".[dev]"
"${pip[@]}" check
echo "$want" > "$stamp"
echo "bootstrap: ready" >&2
