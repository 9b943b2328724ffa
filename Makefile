# The two commands: `make run` (the agent, default config and rules, alerts on stdout) and
# `make test` (the whole test suite).  Both set the machine up first (idempotent, fast when done).
# `make bench BENCH_ARGS=--quick`: the workload, start-up and memory benchmarks in a short check.
.PHONY: setup run test demo bench clean image

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/syswarden $(ARGS)

test: setup
	bash scripts/test.sh $(ARGS)

demo: setup
	@bash scripts/dockerd.sh
	$(PY) scripts/demo.py

bench: setup
	@bash scripts/dockerd.sh
	$(PY) bench/bench_rules.py
	$(PY) bench/bench_rules_scaling.py
	$(PY) bench/bench_rules_scaling.py --distinct-macros
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_socket_events.py
	$(PY) bench/bench_capture_decode.py
	$(PY) bench/bench_hostile.py
	$(PY) bench/bench_yaml_hostile.py
	$(PY) bench/bench_outputs.py
	$(PY) bench/bench_overhead.py
	$(PY) bench/bench_overhead.py --skip-loops --skip-latency --falco
	$(PY) bench/bench_workloads.py $(BENCH_ARGS)
	$(PY) bench/bench_startup.py $(BENCH_ARGS)
	$(PY) bench/bench_webserver.py $(BENCH_ARGS)
	$(PY) bench/bench_memory.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# `make image`: the agent's container image (syswarden:0.1.0), built offline; the Debian base is
# made once by debootstrap and cached under /var/cache/syswarden-image (scripts/image.sh).
image: setup
	@bash scripts/dockerd.sh
	@bash scripts/image.sh
