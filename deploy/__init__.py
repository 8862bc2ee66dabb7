"""Deployment: what `lakehouse deploy` and `lakehouse teardown` do to an account.

Installed with the CLI, never shipped with a Lambda (`chalice package` takes app.py and chalicelib/ only) nor in
the Glue jobs' zip. It may import the Lambda core (chalicelib); the Lambda core never imports it.
"""
