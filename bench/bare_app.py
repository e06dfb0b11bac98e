"""The ingest baseline: a bare Flask endpoint that reads the body and answers 200 JSON."""

from __future__ import annotations

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.post("/webhooks/shopify")
def receive() -> ResponseReturnValue:
    body = request.get_data(cache=False)
    return jsonify(status="accepted", bytes=len(body)), 200
