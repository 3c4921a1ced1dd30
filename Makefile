# Parley: `make run` starts the whole stack on its embedded default; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
UV := $(VENV)/bin/uv
PY := $(VENV)/bin/python
PROTO_SRC := protos
PROTO_OUT := libs/protocol/src
PROTOS := $(wildcard $(PROTO_SRC)/parley/v1/*.proto)
# Every Python package of the libraries and services, found by folder (a new service needs
# no edit here); the generated protobuf package is left to protoc.
PACKAGES := $(filter-out $(PROTO_OUT)/parley,$(patsubst %/__init__.py,%,\
  $(wildcard libs/*/src/*/__init__.py services/*/src/*/__init__.py)))

.PHONY: run test install proto proto-check lint typecheck unit integration e2e bench system-deps image image-deps clean

# The only thing needed beforehand is Python 3.11+; where its venv module is missing
# (Debian's python3 without python3-venv), it is installed first.
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Parley needs Python 3.11 or newer ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  rm -rf $(VENV); command -v apt-get >/dev/null || exit 1; \
	  echo "installing python3-venv"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

# --all-packages: every workspace member (each folder of libs/ and services/), so a new
# service is installed without being listed anywhere.
install: $(UV)
	$(UV) sync --all-packages --frozen --quiet

run: install
	$(PY) -m parley_devstack run

# Python code from the protos (one target; CI fails when it is stale, see proto-check).
proto: install
	$(PY) -m grpc_tools.protoc -I$(PROTO_SRC) --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) $(PROTOS)
	touch $(PROTO_OUT)/parley/__init__.py $(PROTO_OUT)/parley/v1/__init__.py

proto-check: install
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I$(PROTO_SRC) --python_out=$$tmp --pyi_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find . -name '*_pb2.py*'); do \
	  cmp -s $$tmp/$$f $(PROTO_OUT)/$$f || { echo "stale generated code: $(PROTO_OUT)/$$f (run 'make proto')"; rm -rf $$tmp; exit 1; }; \
	done; rm -rf $$tmp; echo "generated protobuf code is up to date"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy $(PACKAGES)

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

e2e: install
	$(PY) -m pytest tests/e2e

# System packages the tests use, installed through apt when missing (needs root):
# coturn, a real TURN server that the call tests relay media through, and sipp
# (sip-tester), the SIP carrier of the phone-call tests and bench/sip.py.
system-deps:
	@command -v turnserver >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "the tests need coturn (turnserver); install it"; exit 1; }; \
	  echo "installing coturn"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null; }
	@command -v sipp >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "the tests need sipp (sip-tester); install it"; exit 1; }; \
	  echo "installing sip-tester (sipp)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sip-tester >/dev/null; }

test: install system-deps proto-check lint typecheck
	$(PY) -m pytest tests

bench: install
	$(PY) bench/connect.py
	$(PY) bench/events.py
	$(PY) bench/call_setup.py
	$(PY) bench/messaging.py
	$(PY) bench/push.py
	$(PY) bench/sip.py
	$(PY) bench/conference.py
	$(PY) bench/stats.py
	$(PY) bench/storm.py

# Container images, one per service (README "Images"): parley-<service>:$(TAG) for every
# folder of services/, or `make image SERVICES=gateway`. Built by buildah without a Docker
# engine on a Debian base that debootstrap makes once (parley-base:bookworm, from the
# Debian archive apt uses here unless DEBIAN_MIRROR is set). Needs root; not part of test.
SERVICES ?= $(sort $(notdir $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))))
TAG ?= dev

image: image-deps
	TAG=$(TAG) deploy/docker/build-images.sh $(SERVICES)

# buildah and debootstrap, installed through apt when missing (needs root).
image-deps:
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make image needs buildah and debootstrap; install them"; exit 1; }; \
	  echo "installing buildah and debootstrap"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
