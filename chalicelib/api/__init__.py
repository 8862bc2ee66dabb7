"""The HTTP API's answers: pipeline status, the OpenAPI document, the dashboard page."""
