# Stepwell: `make run` serves the app, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= designer.settings

.PHONY: run test bench system venv assets db image libvirtd clean

system:                       ## Debian packages (only the missing ones)
	@scripts/install-system.sh

libvirtd: system             ## start libvirtd/virtlogd when no init system runs them
	@scripts/start-libvirtd.sh || echo "warning: libvirtd unavailable; the process driver will be used" >&2

$(VENV)/.installed: requirements.txt requirements-test.txt | system
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> installing Python packages"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@

venv: $(VENV)/.installed

node_modules/.installed: package.json package-lock.json | system
	@echo "==> installing npm packages"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

assets: node_modules/.installed venv
	@$(PY) manage.py collectstatic --noinput -v0

db: venv
	@$(PY) manage.py migrate --noinput -v0

image: venv libvirtd db       ## guest VM image (cached by recipe hash) + package layer of the allow-list
	@$(PY) manage.py sandbox_build_image
	@$(PY) manage.py runtime_build --if-missing

run: assets db image
	@$(PY) manage.py ensure_admin
	@HOST=$(HOST) PORT=$(PORT) PY=$(PY) scripts/run.sh

test: assets image
	@PY=$(PY) scripts/test.sh

bench: assets db image
	@$(PY) bench/sandbox_bench.py
	@$(PY) bench/engine_bench.py
	@$(PY) bench/egress_bench.py --driver process
	@$(PY) bench/egress_bench.py --driver libvirt --n 50 --rounds 2 --downloads 2
	@$(PY) bench/engine_bench.py --service --driver libvirt --pool 2 --concurrency 4 --isolation both --duration 20 -c 8 -n 20 --pace 1.0 --pause 3
	@$(PY) bench/session_bench.py --driver libvirt -n 200 -m 8

clean:
	rm -rf $(VENV) node_modules var
