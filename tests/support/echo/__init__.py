"""The echo capability's service: a test-only service of the same shape as every service
(`__main__` -> `app` composition root -> `handlers`), run by the integration tests in
process and by the end-to-end tests as a process (`python -m tests.support.echo`)."""
