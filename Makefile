# The two commands of the README.
.PHONY: run test
run:  ## install and run the city brain on the demo city (simulator, live view, alerts; no external service)
	@scripts/bootstrap.sh
	@.venv/bin/citybrain run
test: ## install everything the tests need and run the suite (real Redis, SUMO, ...)
	@scripts/test.sh
