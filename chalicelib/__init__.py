"""Serverless Lakehouse application package, shipped by Chalice with every Lambda.

Keep imports here light: every Lambda imports this package on cold start.
"""
