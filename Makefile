# The two commands a new user needs. Each installs what it needs into .venv first.
.PHONY: demo test bootstrap lint

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/vigil demo

test: bootstrap
	.venv/bin/python -m pytest -q -p no:cacheprovider tests

lint: bootstrap
	.venv/bin/ruff check vigil monitor streams dashboards bench tests
	.venv/bin/mypy vigil monitor streams dashboards bench tests
	.venv/bin/lint-imports
