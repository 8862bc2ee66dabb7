"""Serverless Lakehouse application package, shipped by Chalice with every Lambda.

Keep imports here light: every Lambda imports this package on cold start.
"""

from pathlib import Path

# The Chalice app's name: Lambdas are named <APP_NAME>-<stage>-<function>. `.chalice/config.json` says the same
# (tested); a deployed Lambda has no .chalice/ to read it from.
APP_NAME = "serverless-lakehouse"
METRICS_NAMESPACE = "ServerlessLakehouse"  # the Lambdas' CloudWatch metrics (app.py: embedded in their logs)
# The example queries: Athena named queries (provision), `lakehouse query --example`, the cost what-if.
QUERIES_DIR = Path(__file__).with_name("queries")
