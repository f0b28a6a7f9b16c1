# RoadEdge developer commands. `make setup` installs everything (CPU torch first:
# a looser torch requirement would pull a multi-GB CUDA build).
PY ?= python
PIP ?= $(PY) -m pip
# extras to install; add `sumo` (eclipse-sumo, ~230 MB) to run the SUMO pipeline test too
EXTRAS ?= train,viz,dev

.PHONY: setup test test-all lint train bench mutants
setup:
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[$(EXTRAS)]"

test: setup
	$(PY) -m roadedge.envs.sim.warmup
	$(PY) -m pytest -q -n 2

test-all: setup
	$(PY) -m roadedge.envs.sim.warmup
	$(PY) -m pytest -q -n 2 -m ""

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# A short run: the default MaskablePPO agent on city (cloned from greedy+failover, then 50k
# PPO steps; about 8 min here), then agent vs baselines.
train: setup
	$(PY) train.py --algo maskable_ppo --env RoadEdge-v1 --timesteps 50000 --workers 2

bench: setup
	roadedge-bench --out results/bench.json

# Mutation testing of envs/sim with Cosmic Ray, one module at a time, at most
# MUTANT_BUDGET_S seconds per module; a second run continues (results/mutants/).
MUTANT_MODULES ?= formulas sessions layout
MUTANT_BUDGET_S ?= 600
mutants: setup
	$(PY) tests/mutants.py $(MUTANT_MODULES) --budget-s $(MUTANT_BUDGET_S)
