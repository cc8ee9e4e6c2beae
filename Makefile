# The two quick-start commands. Each one sets up what it needs by itself.
.PHONY: demo test

demo:  ## install hullguard into .venv and scan the bundled demo image (offline after install)
	@bash scripts/demo.sh

test:  ## install test dependencies (and, as root, the system tools the tests use) and run every test
	@bash scripts/test.sh
